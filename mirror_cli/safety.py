"""Content safety before generation: free text is screened against a deny-list and a length cap.
Text that hits the deny-list blocks the job (the user gets the fallback); it never reaches a
provider."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_FREE_TEXT = 500

_DENY = re.compile(
    r"\b(nude|naked|nsfw|porn\w*|sex|sexual|sexy|erotic|genitals?|gore|gory|decapitat\w*|behead\w*|"
    r"murder\w*|suicide|self[- ]harm|kill(?:ing)?|torture\w*|nazi\w*|swastika|kkk|terroris\w*|"
    r"bomb(?:ing)?|shoot(?:ing)? (?:up|people)|child abuse|racial slur)\b",
    re.IGNORECASE,
)


def screen(texts: Iterable[str]) -> list[str]:
    """Return the reasons (never the text itself) for which the free text must be blocked."""
    reasons: list[str] = []
    for text in texts:
        norm = unicodedata.normalize("NFKC", text or "")
        if len(norm) > MAX_FREE_TEXT:
            reasons.append(f"free text longer than {MAX_FREE_TEXT} characters")
        m = _DENY.search(norm)
        if m:
            reasons.append(f"deny-listed term {m.group(0).lower()!r}")
    return reasons
