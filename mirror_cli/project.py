"""``mirror init``: a project folder of the user's own, with an editable ``mirror.yaml`` and
copies of the shipped configs (and the Firebase rules) to change. Existing files are kept."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError
from .resources import default_config_dir, firebase_files_dir, is_inside_package

SETTINGS_TEMPLATE = """\
# mirror settings for this project (written by 'mirror init'; edit freely).
# Precedence: command-line flags > MIRROR_* environment variables > this file >
# this folder (configs/, fallback_assets/, mirror-data/) > the defaults shipped with mirror.
# Relative paths are relative to this file. Secrets do not belong here: use OPENAI_API_KEY
# or a secrets_file outside version control.
config_dir: configs          # your copy of the configs: stages, styles, models and prices, limits
data_dir: mirror-data        # the local store (store: local)
fallback_dir: fallback_assets  # your fallback set ('mirror seed-fallbacks' writes here)
store: local                 # local | firebase
provider: local              # local (offline, free) | openai
style: daymi
# model: gpt-image-2
# quality: medium
# concurrency: 4
# max_cost: 5.00
# secrets_file: /run/secrets/mirror.env
# firebase_project: my-project
# firebase_bucket: my-project.firebasestorage.app
# firebase_credentials: key.json   # default: Application Default Credentials
"""


@dataclass
class InitResult:
    folder: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def init_project(folder: Path, *, force: bool = False) -> InitResult:
    """Write ``mirror.yaml``, ``configs/`` and the Firebase files into ``folder``; files that
    exist already are kept unless ``force``."""
    if is_inside_package(folder):
        raise UsageError(f"{folder} is inside the installed package, which is read-only.", "Pick another folder.")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} exists and is not a folder.", "Pass a folder path to 'mirror init'.")
    result = InitResult(folder)
    files: list[tuple[str, Path | None]] = [("mirror.yaml", None)]
    shipped = default_config_dir()
    files += [(f"configs/{p.relative_to(shipped).as_posix()}", p) for p in sorted(shipped.rglob("*.yaml"))]
    fb = firebase_files_dir()
    files += [(p.name, p) for p in sorted(fb.iterdir()) if p.is_file()]
    try:
        for rel, source in files:
            target = folder / rel
            if target.exists() and not force:
                result.kept.append(rel)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if source is None:
                target.write_text(SETTINGS_TEMPLATE, encoding="utf-8")
            else:
                shutil.copyfile(source, target)
            result.written.append(rel)
    except OSError as exc:
        raise UsageError(
            f"Cannot write into {folder}: {exc.strerror}.", "Check the folder's permissions, or pick another one."
        ) from None
    return result
