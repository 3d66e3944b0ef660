"""Designers' review: approval states of fallback assets and flagged avatars, the review desk,
and the local review page (``mirror review``)."""

from __future__ import annotations

from .approvals import StoreApprover, avatar_key, decide, effective_state, fallback_key
from .desk import ReviewDesk, ReviewItem

__all__ = ["ReviewDesk", "ReviewItem", "StoreApprover", "avatar_key", "decide", "effective_state", "fallback_key"]
