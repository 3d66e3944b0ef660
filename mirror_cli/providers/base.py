"""The provider contract and its registry.

A provider turns an :class:`ImageRequest` into an :class:`ImageResult`. Built-in and external
providers register the same way: ``register_provider(name, factory)`` or an entry point in the
``mirror.providers`` group whose object is such a factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..models import ImageRequest, ImageResult
from ..registry import Registry

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


@runtime_checkable
class ImageModerator(Protocol):
    """A provider that can check a finished image before anyone sees it (the offline renderer
    cannot: its images are stored with the verdict 'skipped')."""

    async def moderate_image(self, data: bytes, mime: str, model: str) -> list[str]:
        """The categories the moderation model flagged the image for (empty: clean); raises
        ProviderFailure when the check could not be made."""
        ...


ProviderFactory = Callable[[ProviderContext], ImageProvider]

_PROVIDERS: Registry[ProviderFactory] = Registry(
    "provider",
    {
        "local": "mirror_cli.providers.local:LocalProvider",
        "openai": "mirror_cli.providers.openai:OpenAIProvider",
        "openai-batch": "mirror_cli.providers.openai_batch:OpenAIBatchProvider",
    },
    group="mirror.providers",
)


def register_provider(name: str, factory: ProviderFactory) -> None:
    _PROVIDERS.register(name, factory)


def known_providers() -> list[str]:
    return _PROVIDERS.names()


def get_provider(name: str, ctx: ProviderContext) -> ImageProvider:
    return _PROVIDERS.factory(name)(ctx)
