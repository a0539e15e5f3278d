"""Finding the profile an ``/api/profiles/{profile_id}`` route names: any identifier as in the
Profile API (``type:value``: ``user_id:u1``, ``email:ann@example.com``, ``phone:+49…``, a custom
type) or a profile id (``use_…``; the id of a merged profile leads to the surviving one)."""

from __future__ import annotations

from opencdp.errors import RequestError
from opencdp.identity.identifiers import normalize_email, normalize_phone
from opencdp.runtime import Runtime
from opencdp.storage.profiles import ProfileRow


def locate_profile(
    runtime: Runtime, workspace_id: str, ref: str, collection: str = "users"
) -> ProfileRow:
    """The live profile ``ref`` names in the workspace; raises NotFound (RequestError for a
    ``type:`` without a value)."""
    store = runtime.profiles
    identifier = parse_ref(runtime, ref)
    if identifier is None:
        return store.resolve_id(workspace_id, ref, collection)
    return store.find_profile(workspace_id, collection, *identifier)


def parse_ref(runtime: Runtime, ref: str) -> tuple[str, str] | None:
    """``type:value`` as the (type, normalized value) it is stored as; None for a profile id;
    RequestError for a ``type:`` without a value."""
    if ":" not in ref:
        return None
    id_type, _, value = ref.partition(":")
    id_type = id_type.strip().lower()
    if not value:
        raise RequestError(
            "a profile is named by its id or by type:value, e.g. email:ann@example.com",
            code="invalid_request",
        )
    if id_type == "email":
        value = normalize_email(value) or value.strip().lower()
    elif id_type == "phone":
        value = normalize_phone(value, runtime.settings.default_phone_region) or value
    return id_type, value
