"""The provider contract and its registry.

A provider turns an :class:`ImageRequest` into an :class:`ImageResult`. Built-in and external
providers register the same way: ``register_provider(name, factory)`` or an entry point in the
``mirror.providers`` group whose object is such a factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import ConfigError
from ..models import ImageRequest, ImageResult

if TYPE_CHECKING:
    from ..config import ConfigSet
    from ..settings import Settings


@dataclass(frozen=True)
class Capabilities:
    edits: bool = False
    max_references: int = 0
    sizes: tuple[str, ...] | None = None  # None = flexible
    transparency: bool = False
    batch: bool = False
    uses_references: bool = False  # whether reference images change the picture (and the request key)


@dataclass
class ProviderContext:
    settings: Settings
    configs: ConfigSet
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class ImageProvider(Protocol):
    name: str
    capabilities: Capabilities

    @property
    def renderer_version(self) -> str:
        """Everything that changes the picture for the same request (part of the request key)."""
        ...

    async def generate(self, request: ImageRequest) -> ImageResult: ...

    async def aclose(self) -> None: ...


ProviderFactory = Callable[[ProviderContext], ImageProvider]

_BUILTIN: dict[str, str] = {
    "local": "mirror_cli.providers.local:LocalProvider",
    "openai": "mirror_cli.providers.openai:OpenAIProvider",
    "openai-batch": "mirror_cli.providers.openai_batch:OpenAIBatchProvider",
}
_REGISTRY: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    _REGISTRY[name] = factory


def _external() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="mirror.providers")}


def known_providers() -> list[str]:
    return sorted({*_BUILTIN, *_REGISTRY, *_external()})


def get_provider(name: str, ctx: ProviderContext) -> ImageProvider:
    if name in _REGISTRY:
        return _REGISTRY[name](ctx)
    if name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        factory: ProviderFactory = getattr(import_module(module), attr)
        return factory(ctx)
    ext = _external()
    if name in ext:
        factory = ext[name].load()  # type: ignore[attr-defined]
        return factory(ctx)
    raise ConfigError(f"Unknown provider {name!r}.", f"Use one of: {', '.join(known_providers())}.")
