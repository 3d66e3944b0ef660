"""Image providers: one module per back-end, all behind the Protocol in ``base``."""

from .base import (
    Capabilities,
    ImageProvider,
    ProviderContext,
    get_provider,
    known_providers,
    register_provider,
)

__all__ = [
    "Capabilities",
    "ImageProvider",
    "ProviderContext",
    "get_provider",
    "known_providers",
    "register_provider",
]
