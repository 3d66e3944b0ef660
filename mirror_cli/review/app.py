"""The review page's HTTP side: a FastAPI app on loopback, over the review desk.

Every write carries the page's token in a header: another site open in the same browser cannot
send one (a custom header needs a CORS preflight, which this app never grants), so it cannot
approve anything behind the designer's back."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import MirrorError, NotFoundError
from .desk import ReviewDesk
from .page import render_page

if TYPE_CHECKING:
    from ..core import Mirror

KEY = r"^[A-Za-z0-9_.-]{1,128}(/[A-Za-z0-9_.-]{1,128}){1,2}$"


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["fallback", "avatar"]
    key: str = Field(pattern=KEY)
    state: Literal["draft", "approved", "rejected"] | None = None
    note: str | None = Field(None, max_length=500)


class Rerender(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=KEY)


def create_review_app(core: Mirror, reviewer: str, *, token: str | None = None) -> FastAPI:
    desk = ReviewDesk(core)
    token = token or secrets.token_urlsafe(24)
    app = FastAPI(title="mirror review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token = token
    app.state.desk = desk

    def check(got: str | None) -> None:
        if not got or not secrets.compare_digest(got, token):
            raise HTTPException(403, "This page's token is missing: reload the review page.")

    @app.exception_handler(MirrorError)
    async def mirror_error(_: Request, err: MirrorError) -> JSONResponse:
        status = 404 if isinstance(err, NotFoundError) else 400
        return JSONResponse({"error": err.message, "fix": err.hint}, status)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        stages = [*core.configs.stages.names, *core.configs.stages.trilogy]
        labels = {s: core.configs.label(s) for s in stages}
        return render_page(token, reviewer, core.configs.style.name, labels, str(desk.folder))

    @app.get("/api/items")
    def items(
        queue: Literal["set", "flagged"] = "set",
        stage: str | None = Query(None, max_length=40),
        variant: str | None = Query(None, max_length=128),
        state: Literal["draft", "approved", "rejected"] | None = None,
    ) -> dict[str, Any]:
        found = desk.items(queue, stage=stage or None, variant=variant or None, state=state)
        return {"items": [i.to_dict() for i in found]}

    @app.get("/img/{kind}/{key:path}")
    def image(
        kind: Literal["fallback", "avatar"], key: str, which: Literal["current", "previous"] = "current"
    ) -> Response:
        return Response(desk.image(kind, key, which), media_type="image/webp", headers={"Cache-Control": "no-store"})

    @app.post("/api/decide")
    def decide(body: Decision, x_review_token: str | None = Header(None)) -> dict[str, Any]:
        check(x_review_token)
        review = desk.decide(body.kind, body.key, body.state, reviewer, body.note)
        return {**review.to_dict(), "history": review.history[-5:]}

    @app.post("/api/rerender")
    def rerender(body: Rerender, x_review_token: str | None = Header(None)) -> dict[str, Any]:
        check(x_review_token)
        result = desk.rerender(body.key)
        return {k: result[k] for k in ("rendered", "unchanged", "estimate_usd")}

    return app
