"""Bad input through the real CLI: every case exits with its documented code (never 1), names the
cause, writes nothing, and runs under a memory cap (reading /dev/zero without a bound would hit it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIGS, import_examples, openai_flags
from openai_server import Fault

MEMORY_CAP = 1_500_000_000  # bytes of address space for the CLI process


# The limits are set in a fresh interpreter that then execs the CLI: a preexec_fn would run in a
# fork of this (threaded) test process, where a gRPC library loaded by an earlier test aborts.
_LAUNCH = """
import os, resource, signal, sys
cap, fsize = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
if fsize >= 0:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
os.execv(sys.argv[3], sys.argv[3:])
"""


def run(
    args: list[str], env: dict[str, str] | None = None, fsize: int | None = None
) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "mirror"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_") and k != "OPENAI_API_KEY"}
    full_env.update(env or {})
    launch = [sys.executable, "-c", _LAUNCH, str(MEMORY_CAP), str(-1 if fsize is None else fsize), str(exe)]
    return subprocess.run([*launch, *args], capture_output=True, text=True, env=full_env, timeout=120)


def written(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")) if data_dir.exists() else []


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


@pytest.fixture
def persona_file(tmp_path: Path) -> Path:
    path = tmp_path / "pat.yaml"
    path.write_text("id: pat\nname: Pat\n")
    return path


def _assert_refused(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout[-800:], result.stderr[-800:])
    assert "Traceback" not in result.stderr and "unexpected failure" not in result.stderr
    # a terminal-width wrap may cut a word (a path) anywhere: compare without line breaks
    text = (result.stdout + result.stderr).lower().replace("\n", "")
    for word in words:
        assert word.lower() in text, (word, text[-800:])


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp, fifo: Path("/dev/zero"), ["/dev/zero", "device"]),
        (lambda tmp, fifo: fifo, ["fifo"]),
        (lambda tmp, fifo: tmp, ["directory"]),
        (lambda tmp, fifo: _big_yaml(tmp), ["limit"]),
        (lambda tmp, fifo: _binary_yaml(tmp), ["binary"]),
    ],
    ids=["dev-zero", "fifo", "directory", "15MB-yaml", "binary-yaml"],
)
def test_users_import_refuses_files_it_cannot_bound(tmp_path, fifo, make, words):
    data = tmp_path / "data"
    result = run(["users", "import", str(make(tmp_path, fifo)), "--data-dir", str(data)])
    _assert_refused(result, 3, *words)
    assert written(data) == []


def _big_yaml(tmp: Path) -> Path:
    path = tmp / "big.yaml"
    with open(path, "w") as fh:
        fh.write("id: big\nname: Big\npersonality:\n")
        line = "  - " + "x" * 1000 + "\n"
        for _ in range(15_000):
            fh.write(line)
    return path


def _binary_yaml(tmp: Path) -> Path:
    path = tmp / "binary.yaml"
    path.write_bytes(bytes(range(256)) * 64)
    return path


@pytest.mark.parametrize("which", ["dev-zero", "fifo", "directory"])
def test_photo_that_is_not_a_regular_file_is_refused_before_reading(tmp_path, fifo, persona_file, which):
    data = tmp_path / "data"
    assert run(["users", "import", str(persona_file), "--data-dir", str(data)]).returncode == 0
    before = written(data)
    photo = {"dev-zero": Path("/dev/zero"), "fifo": fifo, "directory": tmp_path}[which]
    result = run(["trilogy", "--user", "pat", "--photo", str(photo), "--data-dir", str(data)])
    _assert_refused(result, 2, "not a regular file")
    assert [p for p in written(data) if not p.startswith("mirror.db")] == [
        p for p in before if not p.startswith("mirror.db")
    ]


def test_secrets_file_that_is_a_device_is_refused(tmp_path):
    data = tmp_path / "data"
    import_examples(data)
    result = run(
        [
            "generate",
            "--user",
            "demo",
            "--stage",
            "month",
            "--provider",
            "openai",
            "--secrets-file",
            "/dev/zero",
            "--data-dir",
            str(data),
        ]
    )
    _assert_refused(result, 3, "secrets file", "device")
    assert not list(data.rglob("*.webp"))


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--active-days", "1e30"], ["active-days"]),
        (["--goals", str(2**63)], ["goals"]),
        (["--active-days", str(10**9)], ["active_days"]),
        (["--achievement", "x" * 100_000], ["major_achievement"]),
    ],
    ids=["float", "2^63", "out-of-bounds", "100KB-achievement"],
)
def test_progress_fields_out_of_bounds_exit_2_naming_the_field(tmp_path, persona_file, flags, words):
    data = tmp_path / "data"
    assert run(["users", "import", str(persona_file), "--data-dir", str(data)]).returncode == 0
    result = run(["users", "progress", "--user", "pat", *flags, "--data-dir", str(data)])
    _assert_refused(result, 2, *words)
    shown = run(["users", "list", "--json", "--data-dir", str(data)])
    rows = json.loads(shown.stdout)
    rows = rows.get("items", rows) if isinstance(rows, dict) else rows
    assert [r["active_days"] for r in rows if r["user"] == "pat"] == [0]  # nothing changed


@pytest.mark.parametrize("age", ["99999999999d", "-5d", "nand"])
def test_purge_cache_age_out_of_range(tmp_path, age):
    _assert_refused(run(["purge-cache", f"--older-than={age}", "--data-dir", str(tmp_path / "d")]), 2, "older")


def test_usage_reversed_range(tmp_path):
    result = run(["usage", "--since", "2026-11-20", "--until", "2026-11-01", "--data-dir", str(tmp_path / "d")])
    _assert_refused(result, 2, "--since")


def test_disk_full_exits_8_without_traceback_or_tmp_files(tmp_path, persona_file):
    """Files may not grow past 40 KB (RLIMIT_FSIZE): the store and the spool hit a full disk."""
    data = tmp_path / "data"
    assert run(["users", "import", str(persona_file), "--data-dir", str(data)]).returncode == 0
    result = run(["generate", "--user", "pat", "--stage", "month", "--json", "--data-dir", str(data)], fsize=40_000)
    _assert_refused(result, 8, "disk")
    payload = json.loads(result.stdout)  # still one JSON document under --json
    assert payload
    assert not [p for p in written(data) if p.endswith(".tmp")]


def test_configured_key_of_any_shape_never_appears_in_output_report_or_ledger(tmp_path, openai_server):
    key = "gw_live_Q7Zr2mXkP0aL9vB4cN8dE1fG"  # a gateway key: no sk- prefix, no Bearer in the text
    openai_server.push(Fault(401, "invalid_request_error", "invalid_api_key", f"Incorrect API key provided: {key}."))
    data = tmp_path / "data"
    report = tmp_path / "report.json"
    import_examples(data)
    result = run(
        [
            "generate",
            "--user",
            "demo",
            "--stage",
            "month",
            "--json",
            "--report",
            str(report),
            *openai_flags(openai_server.url, CONFIGS, data),
        ],
        env={"OPENAI_API_KEY": key},
    )
    assert result.returncode == 7, result.stderr[-800:]
    assert "Incorrect API key provided" in result.stdout  # the message is there, the key is not
    for text in (result.stdout, result.stderr, report.read_text()):
        assert key not in text
    for path in data.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("id: ../evil\nname: Evil\n", ["id", "letters"]),
        ("id: neg\nname: Neg\nprogress:\n  active_days: -3\n", ["active_days", "greater than or equal"]),
        ("id: huge\nname: Huge\nprogress:\n  active_days: .inf\n", ["active_days"]),
    ],
    ids=["unsafe-id", "negative-days", "infinite-days"],
)
def test_users_import_bad_values_in_a_users_file_exit_2(tmp_path, body, words):
    """Unsafe ids and bad numbers in a user's own file are usage errors (exit 2, as documented)."""
    data = tmp_path / "data"
    path = tmp_path / "user.yaml"
    path.write_text(body)
    result = run(["users", "import", str(path), "--data-dir", str(data)])
    _assert_refused(result, 2, "user.yaml", *words)
