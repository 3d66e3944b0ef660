"""YAML files read safely: bounded, UTF-8, ``yaml.safe_load``, then a pydantic model; an error
names the file, the line and the field, and what is allowed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError, UsageError, read_text
from .models import TIME_ZONE_ERROR

__all__ = ["YAML_MAX_BYTES", "load_yaml_model"]

M = TypeVar("M", bound=BaseModel)


def _line_for(text: str, loc: Sequence[int | str]) -> int | None:
    """Best-effort line number (1-based) of a pydantic error location inside YAML text."""
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for key, value in node.value:
                if key.value == str(part):
                    nxt = value
                    line = key.start_mark.line + 1
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    if node is not None:
        line = node.start_mark.line + 1
    return line


YAML_MAX_BYTES = 1 << 20  # a persona is a few hundred bytes; the largest shipped config is ~10 KB


def load_yaml_model(path: Path, model: type[M], max_bytes: int = YAML_MAX_BYTES) -> M:
    """Read ``path`` (a regular file of at most ``max_bytes``) with ``yaml.safe_load`` and validate
    it; errors name file, line and field."""
    text = read_text(
        path,
        max_bytes,
        what="YAML file",
        hint="Pass a YAML text file (configs: --config-dir / MIRROR_CONFIG_DIR).",
        text_hint="Pass a YAML text file.",
        error=ConfigError,
    )
    if "\x00" in text:
        raise ConfigError(f"{path}: contains NUL bytes; is it a binary file?", "Pass a YAML text file.")
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply.", "Flatten the YAML.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: malformed YAML ({problem}).", "Fix the YAML syntax there.") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, found {type(data).__name__}.",
            "Write the file as 'key: value' pairs.",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        if all(e["type"] == TIME_ZONE_ERROR for e in exc.errors()):
            # an unknown zone is a wrong value given by the user (exit 2), the file is fine
            raise UsageError(_describe(path, text, exc), "Use an IANA zone name such as Europe/Berlin.") from exc
        raise ConfigError(_describe(path, text, exc), "Correct the field(s) named above.") from exc


def _describe(path: Path, text: str, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} invalid field(s):"]
    for err in exc.errors()[:8]:
        loc = [p for p in err["loc"] if isinstance(p, int | str)]
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_for(text, loc)
        where = f" (line {line})" if line else ""
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed here)"
        elif err["type"] == "literal_error":
            expected = (err.get("ctx") or {}).get("expected", "")
            msg = f"got {err.get('input')!r}; allowed: {expected}"
        lines.append(f"  - {field}{where}: {msg}")
    return "\n".join(lines)
