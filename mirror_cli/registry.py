"""One registry for every kind of back-end (image providers, stores): built-ins named by
``module:attribute`` and imported on first use, factories registered at run time, and plug-ins
from an entry-point group."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import ConfigError

F = TypeVar("F", bound=Callable[..., object])


class Registry(Generic[F]):
    """Factories of one kind of back-end, by name."""

    def __init__(self, kind: str, builtin: dict[str, str], group: str, missing_hint: str | None = None) -> None:
        self.kind = kind
        self._builtin = dict(builtin)
        self._group = group
        self._missing_hint = missing_hint
        self._registered: dict[str, F] = {}

    def register(self, name: str, factory: F) -> None:
        self._registered[name] = factory

    def _external(self) -> dict[str, object]:
        return {ep.name: ep for ep in entry_points(group=self._group)}

    def names(self) -> list[str]:
        return sorted({*self._builtin, *self._registered, *self._external()})

    def factory(self, name: str) -> F:
        """The factory registered under ``name``; a ConfigError naming the choices otherwise."""
        if name in self._registered:
            return self._registered[name]
        if name in self._builtin:
            module, _, attr = self._builtin[name].partition(":")
            try:
                found: F = getattr(import_module(module), attr)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.startswith("mirror_cli"):
                    raise
                raise ConfigError(
                    f"The {name!r} {self.kind} needs a package that is not installed ({exc.name}).",
                    self._missing_hint or f"Install the package that provides {exc.name}.",
                ) from exc
            return found
        ext = self._external()
        if name in ext:
            loaded: F = ext[name].load()  # type: ignore[attr-defined]
            return loaded
        raise ConfigError(f"Unknown {self.kind} {name!r}.", f"Use one of: {', '.join(self.names())}.")
