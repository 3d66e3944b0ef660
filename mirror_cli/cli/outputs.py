"""Output paths a command writes after its work (``--report FILE``, ``--out DIR``): checked
before anything is spent, so a path that cannot be written costs nothing (exit 2). A missing
folder is fine when it can be created (it is, when the output is written); nothing is created
by the check, so a command refused for another reason leaves nothing behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import UsageError


def _refuse(path: Path, flag: str, why: str) -> UsageError:
    return UsageError(
        f"{flag} {path}: {why}; nothing was run.",
        f"Pass a {flag} path you can write to (missing folders are created).",
    )


def _existing_ancestor(folder: Path, path: Path, flag: str) -> Path:
    """The nearest folder that exists on the way up from ``folder``; a file there is refused."""
    current = folder.absolute()
    while not current.exists():
        current = current.parent
    if not current.is_dir():
        raise _refuse(path, flag, f"{current} is a file, not a folder")
    return current


def _probe(folder: Path, path: Path, flag: str) -> None:
    """Create and remove a file in ``folder``: the one check that root, ACLs and read-only
    mounts cannot fool."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".mirror-write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise _refuse(path, flag, f"cannot write in {folder} ({exc.strerror or exc})") from None


def check_output_dir(path: Path | None, flag: str = "--out") -> None:
    """The folder exists and is writable, or can be created."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise _refuse(path, flag, "is a file, not a folder")
    _probe(_existing_ancestor(path, path, flag), path, flag)


def check_output_file(path: Path | None, flag: str = "--report") -> None:
    """The file can be written: it is writable if it exists, else its folder is (or can be made)."""
    if path is None:
        return
    if path.is_dir():
        raise _refuse(path, flag, "is a folder, not a file")
    if path.exists():
        try:
            with path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise _refuse(path, flag, f"cannot be written ({exc.strerror or exc})") from None
        return
    _probe(_existing_ancestor(path.parent, path, flag), path, flag)
