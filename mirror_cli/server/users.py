"""/api/v1/users/{id}: the app creates and updates its user's profile (the owner, or an admin).

Bodies are strict about types (``"7"`` and ``true`` are not integers) and forgiving about fields
they do not know (a newer app adding a field must not break): unknown fields are ignored.
The progress is not part of the profile: the app sends it with each generate/evolve call.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures, whose
# dependency aliases are local to ``users_router``.
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from ..errors import UsageError
from ..models import Appearance, ConsentScope, FacialHair, Glasses, HairColor, HairStyle, Persona, SkinTone, Voice
from ..profiles import ProfileUpdate, check_zone, save_profile
from .auth import Caller, forbid
from .problems import ProblemError, openapi_responses

USER_PATH = r"^[A-Za-z0-9_-]{1,128}$"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class AppearanceBody(_Lenient):
    skin: SkinTone = "medium"
    hair_style: HairStyle = "shortFlat"
    hair_color: HairColor = "darkBrown"
    eye_color: str = Field("brown", min_length=1, max_length=20)
    glasses: Glasses = "none"
    facial_hair: FacialHair = "none"
    hoodie_color: str = Field("#E8863A", pattern=r"^#[0-9A-Fa-f]{6}$")
    description: str = Field("", max_length=300, description="Free text; cleaned before it reaches a prompt.")


class ProfileBody(_Lenient):
    """The user's profile as the app knows it. A PUT replaces it (absent fields take their
    defaults; an absent name keeps the stored one)."""

    name: str | None = Field(None, min_length=1, max_length=80, pattern=r"\S", description="The first word greets.")
    age: int | None = Field(None, ge=13, le=110)
    appearance: AppearanceBody = Field(default_factory=AppearanceBody)
    personality: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=12)
    timezone: str | None = Field(
        None, max_length=64, description="An IANA zone (Europe/Berlin): nightly evolutions run in the user's night."
    )
    companion_voice: Voice | None = Field(None, description="I-There's voice; absent keeps the stored one.")
    companion_name: str | None = Field(None, min_length=1, max_length=40)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return check_zone(v)
        except UsageError as err:
            raise ValueError(f"{err.message} {err.hint}") from None

    def to_update(self) -> ProfileUpdate:
        return ProfileUpdate(
            name=self.name,
            age=self.age,
            appearance=Appearance.model_validate(self.appearance.model_dump()),
            personality=list(self.personality),
            timezone=self.timezone,
            companion_voice=self.companion_voice,
            companion_name=self.companion_name,
        )


class Profile(BaseModel):
    user_id: str
    name: str
    age: int | None
    appearance: AppearanceBody
    personality: list[str]
    timezone: str | None
    companion_voice: Voice
    companion_name: str
    created: bool = Field(description="True when this call created the profile.")

    @classmethod
    def of(cls, p: Persona, created: bool) -> "Profile":
        return cls(
            user_id=p.id,
            name=p.name,
            age=p.age,
            appearance=AppearanceBody.model_validate(p.appearance.model_dump()),
            personality=p.personality,
            timezone=p.timezone,
            companion_voice=p.companion.voice,
            companion_name=p.companion.name,
            created=created,
        )


def profile_required(uid: str) -> ProblemError:
    """The first generate of a signed-in user the store does not know yet."""
    return ProblemError(
        409,
        "profile-required",
        "Profile required",
        f"User {uid!r} has no profile yet.",
        f"Create it first with PUT /api/v1/users/{uid} (appearance, personality, timezone, companion_voice), "
        "then send this request again.",
    )


class ConsentBody(BaseModel):
    scope: ConsentScope = Field(description="What the user agrees to: their photo (trilogy) or generation.")
    granted: StrictBool = Field(description="true: agreed; false: withdrawn (future use is refused).")
    terms_version: str = Field(pattern=r"^[A-Za-z0-9._-]{1,40}$", description="The version of the terms shown.")


class ConsentAnswer(BaseModel):
    user_id: str
    scope: ConsentScope
    granted: bool
    at: datetime
    terms_version: str
    recorded_by: str
    deleted: dict[str, int] = Field(
        default_factory=dict,
        description="A withdrawal of photo consent: what was kept of the photo and is now deleted, by kind.",
    )


class ErasureAnswer(BaseModel):
    user_id: str
    already_erased: bool = Field(description="true: an earlier call had erased the user already.")
    removed: dict[str, int] = Field(description="What each step removed (ledger events are kept, re-keyed).")


def users_router(auth: Any) -> APIRouter:
    """``auth``: the dependency that verifies the caller (shared with the other routers)."""
    router = APIRouter()
    Auth = Annotated[Caller, Depends(auth)]
    UserId = Annotated[str, Path(pattern=USER_PATH)]

    @router.put(
        "/users/{user_id}",
        response_model=Profile,
        responses={201: {"model": Profile, "description": "Created"}, **openapi_responses(401, 403, 422, 429, 503)},
        summary="Create or replace the signed-in user's profile (the progress is kept)",
    )
    async def put_user(user_id: UserId, body: ProfileBody, who: Auth, request: Request) -> Response:
        forbid(who, user_id)
        core = request.app.state.service.core
        persona, created = await core.store_calls(save_profile, core.store, user_id, body.to_update())
        shown = Profile.of(persona, created).model_dump(mode="json")
        headers = {"Location": f"/api/v1/users/{user_id}"} if created else None
        return JSONResponse(shown, 201 if created else 200, headers=headers)

    @router.get(
        "/users/{user_id}",
        response_model=Profile,
        responses=openapi_responses(401, 403, 404, 422, 429, 503),
        summary="The user's profile",
    )
    async def get_user(user_id: UserId, who: Auth, request: Request) -> Any:
        forbid(who, user_id)
        core = request.app.state.service.core
        persona = await core.store_calls(core.store.get_user, user_id)
        if persona is None:
            raise ProblemError(
                404,
                "no-profile",
                "No profile",
                f"User {user_id!r} has no profile yet.",
                f"Create it with PUT /api/v1/users/{user_id}.",
            )
        return Profile.of(persona, False)

    @router.post(
        "/users/{user_id}/consent",
        response_model=ConsentAnswer,
        responses=openapi_responses(401, 403, 404, 422, 429, 503),
        summary="Record the signed-in user's consent (or its withdrawal) to the use of their photo or to generation",
    )
    async def post_consent(user_id: UserId, body: ConsentBody, who: Auth, request: Request) -> Any:
        forbid(who, user_id)
        core = request.app.state.service.core
        by = "app" if who.uid == user_id else "admin"
        change = await core.store_calls(
            core.record_consent,
            user_id,
            body.scope,
            granted=body.granted,
            terms_version=body.terms_version,
            recorded_by=by,
        )
        record = change.persona.consent[body.scope].model_dump()
        return ConsentAnswer(user_id=user_id, scope=body.scope, **record, deleted=change.deleted)

    @router.delete(
        "/users/{user_id}",
        response_model=ErasureAnswer,
        responses=openapi_responses(401, 403, 422, 429, 503),
        summary="Erase the user for good (the owner or an admin); safe to repeat",
    )
    async def delete_user(user_id: UserId, who: Auth, request: Request) -> Any:
        forbid(who, user_id)
        core = request.app.state.service.core
        out = await core.store_calls(core.erase_user, user_id)
        return ErasureAnswer(user_id=user_id, already_erased=out["already_erased"], removed=out["removed"])

    return router
