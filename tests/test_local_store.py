import contextlib
import json
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mirror_cli.errors import InvalidUserIdError, StoreError
from mirror_cli.models import Persona
from mirror_cli.stores.local import MIGRATIONS, LocalStore


def test_nothing_is_created_by_reads(tmp_path):
    s = LocalStore(root=tmp_path / "d")
    assert s.get_user("u1") is None and list(s.iter_user_ids()) == [] and s.events() == []
    assert not (tmp_path / "d").exists()


def test_data_dir_is_private_and_migrated(tmp_path):
    s = LocalStore(root=tmp_path / "d")
    s.put_user(Persona(id="u1", name="U"))
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o700
    (version,) = s._open().execute("PRAGMA user_version").fetchone()
    assert version == len(MIGRATIONS)


def test_unsafe_user_id_never_reaches_a_path(tmp_path):
    s = LocalStore(root=tmp_path / "d")
    with pytest.raises(InvalidUserIdError):
        s.put_image("../../etc", "x", b"1", None)
    with pytest.raises(StoreError):
        s.read_image("../../../etc/passwd")


def _unprivileged(work: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """``work(folder)`` as an unprivileged user: root ignores directory permissions, so as root
    it runs in a forked child that dropped to 'nobody' (the answer comes back through a pipe)."""
    base = Path(tempfile.mkdtemp(prefix="mirror-unpriv-"))
    try:
        if os.geteuid() != 0:
            return work(base)
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop root for good, do the work, report, never return to pytest
            code = 0
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                answer = {"uid": os.geteuid(), **work(base)}
            except BaseException as exc:
                answer, code = {"child_error": repr(exc)}, 1
            os.write(write, json.dumps(answer).encode())
            os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            raw = pipe.read()
        _, status = os.waitpid(pid, 0)
        answer = json.loads(raw or b"{}")
        assert os.waitstatus_to_exitcode(status) == 0, answer
        assert answer.pop("uid") == nobody.pw_uid
        return answer
    finally:
        for p in (base, *base.rglob("*")):
            with contextlib.suppress(OSError):
                p.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


def test_unreadable_data_dir():
    """A data dir the user may not enter is a StoreError naming --data-dir (run without root's
    privileges, which ignore directory permissions)."""

    def work(base: Path) -> dict[str, Any]:
        d = base / "d"
        d.mkdir()
        d.chmod(0)
        try:
            LocalStore(root=d)
        except StoreError as err:
            return {"raised": True, "hint": err.hint}
        finally:
            d.chmod(0o700)
        return {"raised": False, "hint": ""}

    answer = _unprivileged(work)
    assert answer["raised"] and "--data-dir" in answer["hint"]


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError) as err:
        LocalStore(root=f)
    assert "is a file" in err.value.message and "--data-dir" in err.value.hint


def test_threads_share_no_connection_and_no_lock(tmp_path):
    """Each thread works on its own connection (WAL), so calls run side by side; what must be
    atomic still is: of many threads claiming one key, exactly one wins, and concurrent progress
    updates on different users lose none of them."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime, timedelta

    from mirror_cli.models import Progress
    from mirror_cli.stores.base import Claim

    s = LocalStore(root=tmp_path / "d")
    for i in range(8):
        s.put_user(Persona(id=f"u{i}", name="U"))
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    barrier = threading.Barrier(8)

    def work(i: int) -> tuple[int, bool]:
        barrier.wait()
        s.set_progress(f"u{i}", Progress(active_days=10 + i))
        won = s.claim(Claim("u0/k", f"owner{i}", now + timedelta(minutes=5), now), now).acquired
        return id(s._open()), won

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert len({conn for conn, _ in results}) == 8
    assert sum(won for _, won in results) == 1
    assert [s.get_user(f"u{i}").progress.active_days for i in range(8)] == [10 + i for i in range(8)]
    s.close()
    assert s.get_user("u1") is None  # closed: every connection is gone, nothing is read
    s2 = LocalStore(root=tmp_path / "d")
    assert s2.get_user("u1").progress.active_days == 11
    s2.close()
