"""The defaults shipped inside the package (configs, the example personas, the default fallback
set, the Firebase rules), found with importlib.resources. They are read, never written: a user's
own copies live in their project folder (``mirror init``)."""

from __future__ import annotations

import atexit
import contextlib
from functools import cache
from importlib import resources
from pathlib import Path

_files = contextlib.ExitStack()
atexit.register(_files.close)


@cache
def package_data(name: str) -> Path:
    """A folder of ``mirror_cli/data`` as a real path (extracted once if the package is zipped)."""
    ref = resources.files("mirror_cli") / "data" / name
    if isinstance(ref, Path):
        return ref
    return _files.enter_context(resources.as_file(ref))


def default_config_dir() -> Path:
    """The shipped configs: stages, styles, models and prices, limits, messages, fallback variants."""
    return package_data("configs")


def shipped_fallback_dir() -> Path:
    """The default fallback set, used when the user's project has none for a stage."""
    return package_data("fallback_assets")


def examples_dir() -> Path:
    """Example personas, imported on request only (``mirror users import --examples``)."""
    return package_data("examples") / "personas"


def firebase_files_dir() -> Path:
    """firebase.json, the security rules and the indexes, for ``firebase deploy`` from a project."""
    return package_data("firebase")


def is_inside_package(path: Path) -> bool:
    """True when ``path`` lies inside the installed package (which is read-only)."""
    package = Path(str(resources.files("mirror_cli"))).resolve()
    try:
        path.resolve().relative_to(package)
    except ValueError:
        return False
    return True
