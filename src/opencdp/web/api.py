"""OpenCDP's own APIs under ``/api``: contacts, identity explanations, identity rules.

Tracking plans and the quarantine live in :mod:`opencdp.web.governance_api`."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from opencdp.errors import Forbidden, OpenCDPError, RequestError
from opencdp.runtime import Runtime
from opencdp.services.identity import explain_profile, set_identity_rules
from opencdp.web.auth import authenticate, note_profile
from opencdp.web.inputs import refuse_nul
from opencdp.web.responses import JSON, from_exception


class ContactIn(BaseModel):
    """A customer as a touchpoint knows them (e.g. the web shop's account-creation form)."""

    identifiers: dict[str, str] = Field(
        min_length=1,
        description='Identifier type -> value, e.g. {"email": "a@b.com", "user_id": "shop-42"}.',
    )
    traits: dict[str, Any] = Field(
        default_factory=dict, description="Traits to set on the profile."
    )
    workspace_id: str | None = Field(default=None, description="Defaults to the token's workspace.")


class ContactOut(BaseModel):
    profile_id: str
    created: bool


def api_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["OpenCDP API"])

    @router.post(
        "/contacts",
        response_model=ContactOut,
        summary="Look up or create a contact",
        # The body is parsed by hand (for the error shape), so declare it for OpenAPI clients.
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ContactIn.model_json_schema()}},
            }
        },
        responses={201: {"model": ContactOut, "description": "A new profile was created"}},
    )
    async def contacts(request: Request) -> Response:
        """Look up the profile these identifiers belong to, or create it, under the same identity
        rules as events. Safe under concurrency: the same customer is never created twice."""
        try:
            token = authenticate(runtime, request)
            try:
                body = ContactIn.model_validate_json(await request.body())
            except ValueError as exc:
                raise RequestError(f"invalid contact: {exc}", code="invalid_contact") from None
            refuse_nul(body.model_dump(), "a contact")
            workspace = body.workspace_id or token.workspace_id
            if workspace != token.workspace_id and not token.instance_admin:
                raise Forbidden("the token does not belong to that workspace")
            profile_id, created = runtime.processor.upsert_contact(
                workspace, body.identifiers, body.traits
            )
        except OpenCDPError as exc:
            return from_exception(exc)
        return JSON(
            {"profile_id": profile_id, "created": created}, status_code=201 if created else 200
        )

    @router.get("/profiles/{profile_id}/identity", summary="Why identifiers belong together")
    async def identity(profile_id: str, request: Request) -> Response:
        try:
            token = authenticate(runtime, request)
            body = explain_profile(runtime, token.workspace_id, profile_id)
            note_profile(request, str(body["profile_id"]))
        except OpenCDPError as exc:
            return from_exception(exc)
        return JSON(body)

    @router.get("/workspaces/{workspace_id}/identity-rules", summary="Identity rules")
    async def get_rules(workspace_id: str, request: Request) -> Response:
        """The identity rules in force for a workspace (defaults plus its overrides)."""
        try:
            authenticate(runtime, request, workspace_id)
            config = runtime.identity_config(workspace_id)
        except OpenCDPError as exc:
            return from_exception(exc)
        return JSON(
            {"rules": config.to_dict(), "overrides": runtime.admin.identity_config(workspace_id)}
        )

    @router.put("/workspaces/{workspace_id}/identity-rules", summary="Set identity rules")
    async def put_rules(workspace_id: str, request: Request) -> Response:
        """Replace the workspace's identity-rule overrides (``{}`` resets to the defaults).

        They apply to events processed from now on; existing links are not re-evaluated."""
        try:
            authenticate(runtime, request, workspace_id)
            try:
                overrides = orjson.loads(await request.body())
            except orjson.JSONDecodeError as exc:
                raise RequestError(f"body is not valid JSON: {exc}", code="invalid_json") from None
            if not isinstance(overrides, dict):
                raise RequestError("send a JSON object of overrides", code="invalid_rules")
            refuse_nul(overrides, "identity rules")
            config = set_identity_rules(runtime, workspace_id, overrides)
        except OpenCDPError as exc:
            return from_exception(exc)
        return JSON({"rules": config.to_dict(), "overrides": overrides or None})

    return router
