"""What the local concerns share to forget a user: a SQL function that tells whether a text
names a user id as a whole word (ids are letters, digits, '_' and '-'), so 'u1' never matches
'u10', and the tombstone check every write of a user's data goes through."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from functools import lru_cache

from ...errors import UserErasedError
from ...models import validate_user_id
from .db import LocalDb

_ID_CHARS = "A-Za-z0-9_-"


@lru_cache(maxsize=64)
def id_pattern(uid: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![{_ID_CHARS}]){re.escape(uid)}(?![{_ID_CHARS}])")


def names_user(text: object, uid: object) -> int:
    return int(isinstance(text, str) and isinstance(uid, str) and bool(id_pattern(uid).search(text)))


def with_names_user(db: sqlite3.Connection) -> sqlite3.Connection:
    db.create_function("names_user", 2, names_user, deterministic=True)
    return db


def erased(uid: str) -> UserErasedError:
    return UserErasedError(
        f"User {uid!r} was erased: nothing is stored for them any more.",
        "An erased user id cannot be used again; pick a new id for a new account.",
    )


def pseudonym(store: LocalDb, uid: str) -> str:
    """``erased-`` + HMAC-SHA256(key, uid), first 32 hex digits; the key is created on first use."""
    db = store._open()
    db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('erasure_key', ?)", (secrets.token_hex(32),))
    (value,) = db.execute("SELECT value FROM meta WHERE key = 'erasure_key'").fetchone()
    digest = hmac.new(bytes.fromhex(value), validate_user_id(uid).encode(), hashlib.sha256).hexdigest()
    return f"erased-{digest[:32]}"


def is_erased(store: LocalDb, uid: str) -> bool:
    if not store._ready and not (store.root / "mirror.db").exists():
        return False
    return bool(store._q("SELECT 1 FROM meta WHERE key = ?", (f"tombstone:{pseudonym(store, uid)}",)))


def refuse_erased(store: LocalDb, uid: str) -> None:
    """Every write that would store the user's data again goes through here first."""
    if is_erased(store, uid):
        raise erased(uid)
