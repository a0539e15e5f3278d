"""The loyalty programme under ``/api/loyalty``: the programme, enrolment (web shop and till),
members, their cards (``card.svg`` / ``card.png``), token rotation, physical cards added and
revoked, redemptions, adjustments, the ledger, and the till's token lookup."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opencdp.errors import OpenCDPError, RequestError
from opencdp.runtime import Runtime
from opencdp.services import loyalty as service
from opencdp.services.query_params import whole_number
from opencdp.storage.admin import AccessToken
from opencdp.web.auth import answer, authenticate, note_profile
from opencdp.web.inputs import json_body
from opencdp.web.responses import JSON, from_exception

MAX_LEDGER_PAGE = 500


def _actor(token: AccessToken) -> str:
    return f"token:{token.id}"


def loyalty_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api/loyalty", tags=["Loyalty"])

    @router.get("/programme", summary="The workspace's loyalty programme")
    async def get_programme(request: Request) -> Response:
        """The programme as applied, with its version (404 when there is none)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            return await run_in_threadpool(service.get_programme, runtime, token.workspace_id)

        return await answer(runtime, request, handler)

    @router.put("/programme", summary="Apply the loyalty programme")
    async def put_programme(request: Request) -> Response:
        """Points per currency unit, multipliers, bonuses, tiers, qualification period and
        expiry (``docs/loyalty.md``); the same document as ``opencdp loyalty programme
        apply FILE``. Answers the programme with its new version."""

        async def handler(request: Request, token: AccessToken) -> Any:
            body = await json_body(request)
            return await run_in_threadpool(
                service.apply_programme, runtime, token.workspace_id, body
            )

        return await answer(runtime, request, handler)

    @router.post("/members", summary="Enrol a member (web shop or till)")
    async def enrol(request: Request) -> Response:
        """Names the person by ``user_id``, ``email``, ``phone``, ``anonymous_id``,
        ``profile_id`` or a physical ``card_number``; ``channel`` ``online`` or ``store``,
        ``store_id``, ``traits``. ``201`` with the member and its token; ``200`` with the
        existing member when the person is one already (a new card is added to it)."""
        try:
            token = authenticate(runtime, request)
            body = await json_body(request)
            created, member = await run_in_threadpool(
                lambda: service.enrol(runtime, token.workspace_id, body, actor=_actor(token))
            )
        except OpenCDPError as exc:
            return from_exception(exc)
        if member.get("profile_id"):
            note_profile(request, member["profile_id"])
        return JSON(member, status_code=201 if created else 200)

    @router.get("/members/{member_id}", summary="A member: balance, tier, tokens and cards")
    async def get_member(member_id: str, request: Request) -> Response:
        """``member_id``: a member id (a merged member leads to its survivor), a token or
        card number, or the member's profile (``email:ann@example.com``, a profile id)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            view = await run_in_threadpool(
                service.member_view, runtime, token.workspace_id, member_id
            )
            if view.get("profile_id"):
                note_profile(request, view["profile_id"])
            return view

        return await answer(runtime, request, handler)

    for extension, media_type in (("svg", "image/svg+xml"), ("png", "image/png")):
        router.add_api_route(
            f"/members/{{member_id}}/card.{extension}",
            _card_endpoint(runtime, extension, media_type),
            methods=["GET"],
            summary=f"The member card as {extension.upper()}: Code 128 barcode and QR code",
        )

    @router.post("/members/{member_id}/rotate-token", summary="Replace the member's token")
    async def rotate(member_id: str, request: Request) -> Response:
        """A lost phone or a leaked card image: the digital token is revoked (the till no
        longer finds it) and a new one issued. Physical cards stay valid."""

        async def handler(request: Request, token: AccessToken) -> Any:
            view = await run_in_threadpool(
                service.rotate_token, runtime, token.workspace_id, member_id
            )
            if view.get("profile_id"):
                note_profile(request, view["profile_id"])
            return view

        return await answer(runtime, request, handler)

    @router.post("/members/{member_id}/cards", summary="Give the member a physical card")
    async def add_card(member_id: str, request: Request) -> Response:
        """``{"card_number"}``: a replacement for a lost card, or a second card. ``201`` with
        the member; ``200`` when the card is the member's already; ``409 card_taken`` when
        another member holds it, ``409 card_revoked`` when it was revoked. The card becomes an
        identifier of the member's profile (a till that sends it with an order earns here)."""
        try:
            token = authenticate(runtime, request)
            body = await json_body(request)
            if not isinstance(body, dict) or set(body) != {"card_number"}:
                raise RequestError(
                    'send {"card_number": "…"} and nothing else', code="invalid_member"
                )
            added, view = await run_in_threadpool(
                lambda: service.add_card(
                    runtime,
                    token.workspace_id,
                    member_id,
                    body["card_number"],
                    actor=_actor(token),
                )
            )
        except OpenCDPError as exc:
            return from_exception(exc)
        if view.get("profile_id"):
            note_profile(request, view["profile_id"])
        return JSON(view, status_code=201 if added else 200)

    @router.delete(
        "/members/{member_id}/cards/{card_number}", summary="Revoke a lost or stolen card"
    )
    async def revoke_card(member_id: str, card_number: str, request: Request) -> Response:
        """The till no longer finds the card and it is never issued again; the member keeps
        their points, their token and their other cards. ``404 card_not_found`` when the
        card is not one of the member's active cards."""

        async def handler(request: Request, token: AccessToken) -> Any:
            view = await run_in_threadpool(
                service.revoke_card, runtime, token.workspace_id, member_id, card_number
            )
            if view.get("profile_id"):
                note_profile(request, view["profile_id"])
            return view

        return await answer(runtime, request, handler)

    @router.post("/members/{member_id}/redemptions", summary="Redeem points")
    async def redeem(member_id: str, request: Request) -> Response:
        """``{"points", "reference", "reason"}``: exactly once per ``reference`` (a retry
        answers the first entry with ``200``); ``409 insufficient_points`` when the balance
        does not hold them — of two concurrent redemptions that would overdraw, one is
        refused."""
        try:
            token = authenticate(runtime, request)
            body = await _object(request, {"points", "reference", "reason"})
            reason = body.get("reason")
            if reason is not None and not isinstance(reason, str):
                raise RequestError("reason: text", code="invalid_points")
            created, entry = await run_in_threadpool(
                lambda: service.redeem(
                    runtime,
                    token.workspace_id,
                    member_id,
                    body.get("points"),
                    body.get("reference"),
                    reason=reason,
                    actor=_actor(token),
                )
            )
        except OpenCDPError as exc:
            return from_exception(exc)
        return JSON(entry, status_code=201 if created else 200)

    @router.post("/members/{member_id}/adjustments", summary="Adjust points by hand")
    async def adjust(member_id: str, request: Request) -> Response:
        """``{"points", "reason", "reference"}``: points to add (negative: to take, never
        below zero) with the reason; exactly once per ``reference`` when given."""
        try:
            token = authenticate(runtime, request)
            body = await _object(request, {"points", "reason", "reference"})
            created, entry = await run_in_threadpool(
                lambda: service.adjust(
                    runtime,
                    token.workspace_id,
                    member_id,
                    body.get("points"),
                    reason=body.get("reason"),
                    reference=body.get("reference"),
                    actor=_actor(token),
                )
            )
        except OpenCDPError as exc:
            return from_exception(exc)
        return JSON(entry, status_code=201 if created else 200)

    @router.get("/members/{member_id}/ledger", summary="A member's points ledger")
    async def ledger(member_id: str, request: Request) -> Response:
        """Entries newest first (``limit``, ``before`` an entry id for the next page)."""

        async def handler(request: Request, token: AccessToken) -> Any:
            limit = _int_param(request, "limit", 100, 1, MAX_LEDGER_PAGE)
            before = request.query_params.get("before")
            page = await run_in_threadpool(
                service.ledger_of,
                runtime,
                token.workspace_id,
                member_id,
                limit,
                _int_param(request, "before", 0, 1, 2**62) if before is not None else None,
            )
            if page.get("profile_id"):
                note_profile(request, page["profile_id"])
            return page

        return await answer(runtime, request, handler)

    @router.get("/tokens/{token}", summary="The till's scan: who holds this token")
    async def lookup(token: str, request: Request) -> Response:
        """A member token or physical card number → ``member_id``, ``tier``, ``balance``,
        ``profile_id``. One indexed read."""

        async def handler(request: Request, access: AccessToken) -> Any:
            found = service.lookup_token(runtime, access.workspace_id, token)
            if found.get("profile_id"):
                note_profile(request, found["profile_id"])
            return found

        return await answer(runtime, request, handler)

    return router


def _card_endpoint(runtime: Runtime, extension: str, media_type: str) -> Any:
    async def card(member_id: str, request: Request) -> Response:
        """The card for the app and for e-mails: programme, name, tier, points, and the
        member token as a Code 128 barcode and a QR code."""

        async def handler(request: Request, token: AccessToken) -> Any:
            content, profile_id = await run_in_threadpool(
                service.card, runtime, token.workspace_id, member_id, extension
            )
            if profile_id:
                note_profile(request, profile_id)
            return Response(
                content,
                media_type=media_type,
                headers={"Cache-Control": "private, no-store"},
            )

        return await answer(runtime, request, handler)

    return card


async def _object(request: Request, allowed: set[str]) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise RequestError("send a JSON object", code="invalid_points")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RequestError(
            f"unknown fields {unknown}; send {', '.join(sorted(allowed))}", code="invalid_points"
        )
    return body


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    return whole_number(request.query_params.get(name), name, default=default, low=low, high=high)
