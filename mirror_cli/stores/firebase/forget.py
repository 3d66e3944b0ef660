"""What the Firestore concerns share to forget a user: deletes a page (<= 500 documents, one
batch) at a time so memory stays bounded however many documents the user has, the pseudonym
key (document ``store_meta/erasure``) and the tombstones (``erased_users/<pseudonym>``)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from typing import Any

from ...models import validate_user_id
from ..local.forget import erased
from .client import FirebaseClient, _wrap

BATCH = 500  # Firestore's limit of writes per batch


def delete_all(client: FirebaseClient, query: Any, what: str) -> int:
    """Delete every document ``query`` finds, one page and one batch at a time."""
    n = 0
    try:
        while True:
            docs = list(client._record(query.limit(BATCH)).stream(**client._rt))
            if not docs:
                return n
            batch = client.db.batch()
            for doc in docs:
                batch.delete(doc.reference)
            batch.commit(**client._rt)
            client._count("deletes", len(docs))
            n += len(docs)
    except Exception as exc:
        raise _wrap(exc, f"erasing {what}") from exc


def id_prefix(collection: Any, prefix: str) -> Any:
    """The documents of ``collection`` whose id starts with ``prefix``."""
    from google.cloud.firestore_v1.base_query import FieldFilter
    from google.cloud.firestore_v1.field_path import FieldPath

    doc_id = FieldPath.document_id()
    return collection.where(filter=FieldFilter(doc_id, ">=", collection.document(prefix))).where(
        filter=FieldFilter(doc_id, "<", collection.document(prefix + "\uf8ff"))
    )


def field_is(collection: Any, field: str, value: str) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter

    return collection.where(filter=FieldFilter(field, "==", value))


def _key(client: FirebaseClient) -> bytes:
    """The pseudonym key, read once per client (it never changes once made)."""
    from google.api_core.exceptions import AlreadyExists, Conflict

    if client._erasure_key is not None:
        return client._erasure_key
    doc = client.db.collection("store_meta").document("erasure")
    try:
        snap = doc.get(**client._rt)
        if not snap.exists:
            with contextlib.suppress(AlreadyExists, Conflict):  # another process made it first: use theirs
                doc.create({"key": secrets.token_hex(32)}, **client._rt)
            snap = doc.get(**client._rt)
    except Exception as exc:
        raise _wrap(exc, "reading the erasure key") from exc
    key = bytes.fromhex((snap.to_dict() or {})["key"])
    client._erasure_key = key
    return key


def pseudonym(client: FirebaseClient, uid: str) -> str:
    key = _key(client)
    digest = hmac.new(key, validate_user_id(uid).encode(), hashlib.sha256).hexdigest()
    return f"erased-{digest[:32]}"


def tombstone(client: FirebaseClient, uid: str) -> Any:
    return client.db.collection("erased_users").document(pseudonym(client, uid))


def is_erased(client: FirebaseClient, uid: str) -> bool:
    try:
        return bool(tombstone(client, uid).get(**client._rt).exists)
    except Exception as exc:
        raise _wrap(exc, "reading a tombstone") from exc


def refuse_erased(client: FirebaseClient, uid: str) -> None:
    if is_erased(client, uid):
        raise erased(uid)
