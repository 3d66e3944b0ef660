import os
import stat

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


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unreadable_data_dir(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    d.chmod(0)
    try:
        with pytest.raises(StoreError) as err:
            LocalStore(root=d)
        assert "--data-dir" in err.value.hint
    finally:
        d.chmod(0o700)


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError) as err:
        LocalStore(root=f)
    assert "is a file" in err.value.message and "--data-dir" in err.value.hint
