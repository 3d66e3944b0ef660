"""Stores: one module per back-end, all behind the Protocol in ``base``."""

from .base import Store, get_store, known_stores, register_store

__all__ = ["Store", "get_store", "known_stores", "register_store"]
