"""Firebase ID tokens: who is calling, and may they act on this user id.

Tokens are verified by firebase-admin (signature, audience = the project, expiry, and with
``auth_check_revoked`` a revocation/disabled check against Firebase Auth). A verified token is
remembered for at most a minute (never past its expiry), so a busy client costs one check a
minute, not one per request. The emulator mode follows firebase-admin's convention
(FIREBASE_AUTH_EMULATOR_HOST): tokens are then unsigned, so it is refused in production.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..settings import Settings
from .problems import ProblemError

log = logging.getLogger("mirror.serve")

CACHE_S = 60.0
CACHE_MAX = 50_000


@dataclass(frozen=True)
class Caller:
    uid: str
    admin: bool

    def may_act_on(self, uid: str) -> bool:
        return self.admin or uid == self.uid


def unauthorized(detail: str, fix: str) -> ProblemError:
    return ProblemError(401, "unauthorized", "Not signed in", detail, fix)


def forbid(caller: Caller, uid: str) -> None:
    if not caller.may_act_on(uid):
        raise ProblemError(
            403,
            "forbidden",
            "Not your user id",
            f"The signed-in user may not act on user {uid!r}.",
            "Use the user id of the signed-in account (only admins may act on others).",
        )


def emulator_host() -> str | None:
    return os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") or None


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
CLOCK_SKEW_S = 300  # tokens issued up to five minutes "in the future" (clock drift) are accepted


def check_emulator(host: str | None, settings: Settings) -> None:
    """Fail closed: unsigned emulator tokens only when explicitly allowed, never in production,
    and only from an emulator on this machine. One stray variable in a deploy stops the server."""
    if host is None:
        return
    if settings.environment == "production":
        raise ConfigError(
            "FIREBASE_AUTH_EMULATOR_HOST is set while the settings say environment: production; "
            "the emulator accepts unsigned tokens, so anyone could sign in.",
            "Unset FIREBASE_AUTH_EMULATOR_HOST in production.",
        )
    if not settings.auth_emulator:
        raise ConfigError(
            "FIREBASE_AUTH_EMULATOR_HOST is set, but accepting the emulator's unsigned tokens was not allowed.",
            "Unset FIREBASE_AUTH_EMULATOR_HOST, or for local development allow it explicitly with "
            "MIRROR_AUTH_EMULATOR=1 (refused in production).",
        )
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    if name not in LOOPBACK:
        raise ConfigError(
            f"FIREBASE_AUTH_EMULATOR_HOST names {host!r}, not an emulator on this machine.",
            "Run the Auth emulator on 127.0.0.1 (or localhost) and point the variable there.",
        )


def check_claims(claims: dict[str, Any], project: str, now: float) -> None:
    """Our own checks of a verified token (firebase-admin skips some against the emulator)."""
    expired = "The ID token has expired.", "Refresh the ID token (getIdToken(true)) and retry."
    invalid = (
        "The ID token is not a valid Firebase ID token for this project.",
        "Send the ID token of a user signed in to this project's Firebase Auth.",
    )
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        raise unauthorized(*expired)
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + CLOCK_SKEW_S or iat > exp:
        raise unauthorized(*invalid)
    if claims.get("aud") != project or claims.get("iss") != f"https://securetoken.google.com/{project}":
        raise unauthorized(*invalid)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= 128 or claims.get("uid", sub) != sub:
        raise unauthorized(*invalid)


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        try:
            import firebase_admin
            from firebase_admin import credentials
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "'mirror serve' needs firebase-admin to verify ID tokens.",
                "firebase-admin is a dependency of mirror: reinstall it "
                "(pip install --force-reinstall mirror-realm-avatars).",
            ) from exc
        self.check_revoked = settings.auth_check_revoked
        self.emulator = emulator_host()
        check_emulator(self.emulator, settings)
        project = (
            settings.firebase_project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        )
        if not project:
            raise ConfigError(
                "No Firebase project id to verify ID tokens against.",
                "Pass --firebase-project or set MIRROR_FIREBASE_PROJECT (or GOOGLE_CLOUD_PROJECT).",
            )
        self.project = project
        cred: Any = None
        path = settings.firebase_credentials or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if path and not self.emulator:
            cred = credentials.Certificate(str(path))
        elif not self.emulator:
            cred = credentials.ApplicationDefault()  # resolved on first use (revocation checks only)
        else:  # firebase-admin swaps in its own credentials for the emulator; the app needs a placeholder

            class _NoCredentials(credentials.Base):  # type: ignore[misc]
                def get_credential(self) -> Any:
                    from google.auth.credentials import AnonymousCredentials

                    return AnonymousCredentials()  # type: ignore[no-untyped-call]

            cred = _NoCredentials()
        self.app = firebase_admin.initialize_app(
            cred, {"projectId": project}, name=f"mirror-auth-{uuid.uuid4().hex[:8]}"
        )
        self._cache: dict[str, tuple[float, Caller]] = {}
        if self.emulator:
            banner = "!" * 78
            log.warning(
                "%s\nAUTH EMULATOR MODE: ID tokens are checked against the Firebase Auth emulator at %s.\n"
                "Unsigned tokens are accepted. Never use this mode with real users.\n%s",
                banner,
                self.emulator,
                banner,
            )

    def close(self) -> None:
        import firebase_admin

        if self.app is not None:
            app, self.app = self.app, None
            firebase_admin.delete_app(app)

    async def caller(self, authorization: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized(
                "No ID token: the Authorization header is missing or not 'Bearer <token>'.",
                "Sign in with Firebase Auth and send 'Authorization: Bearer <ID token>'.",
            )
        token = token.strip()
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        claims = await asyncio.to_thread(self._verify, token)
        caller = Caller(uid=str(claims["uid"]), admin=claims.get("admin") is True)
        expires_in = float(claims.get("exp", 0)) - time.time()
        if expires_in > 0:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = (now + min(CACHE_S, expires_in), caller)
        return caller

    def _verify(self, token: str) -> dict[str, Any]:
        from firebase_admin import auth

        try:
            claims: dict[str, Any] = auth.verify_id_token(token, app=self.app, check_revoked=self.check_revoked)
        except auth.ExpiredIdTokenError:
            raise unauthorized(
                "The ID token has expired.", "Refresh the ID token (getIdToken(true)) and retry."
            ) from None
        except auth.RevokedIdTokenError:
            raise unauthorized("The ID token was revoked.", "Sign in again.") from None
        except auth.UserDisabledError:
            raise unauthorized("This account is disabled.", "Ask the operator to enable the account.") from None
        except auth.CertificateFetchError:
            raise ProblemError(
                503,
                "auth-unavailable",
                "Sign-in check unavailable",
                "The Firebase public keys could not be fetched to check the ID token.",
                "Try again shortly.",
                retry_after_s=10,
            ) from None
        except (auth.InvalidIdTokenError, ValueError):
            raise unauthorized(
                "The ID token is not a valid Firebase ID token for this project.",
                "Send the ID token of a user signed in to this project's Firebase Auth.",
            ) from None
        except Exception as exc:  # e.g. Firebase Auth unreachable for the revocation check
            log.warning("token check failed: %s", type(exc).__name__)
            raise ProblemError(
                503,
                "auth-unavailable",
                "Sign-in check unavailable",
                "Firebase Auth could not be reached to check the ID token.",
                "Try again shortly.",
                retry_after_s=10,
            ) from None
        # firebase-admin checks signed tokens only: against the Auth emulator an expired token, or
        # one for another project, would pass; exp, iat, aud, iss and sub are checked here for both.
        check_claims(claims, self.project, time.time())
        return claims
