"""mirror: batch generation of Mirror Realm reflection avatars.

The public API is what the CLI and the tests import; everything else is internal."""

__version__ = "0.1.0"

__all__ = ["__version__"]
