"""Loyalty use cases the HTTP API, the CLI and the till share: the programme, enrolment,
member views, tokens and cards, redemptions, adjustments and the ledger.

Enrolment makes the member at once (the till prints its token) and records a ``Loyalty
Enrolled`` event in the same transaction; the worker binds the member to the profile the
event resolves to (:mod:`opencdp.retail.loyalty_listener`), and the welcome journey confirms
it. Redemptions and adjustments go through the loyalty book like the worker's entries:
exactly once per reference, the balance never below zero, the change on the timeline.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from opencdp.errors import Conflict, NotFound, RequestError
from opencdp.loyalty import ledger
from opencdp.loyalty.programme import ProgrammeError, parse_programme
from opencdp.loyalty.tokens import is_token_shaped
from opencdp.retail.loyalty_book import EXPIRING_HORIZON, member_traits
from opencdp.retail.loyalty_listener import CARD_TYPE, ENROLLED, new_member_id
from opencdp.runtime import Runtime
from opencdp.services.profile_lookup import locate_profile
from opencdp.storage.db import Connection
from opencdp.storage.loyalty import Member, member_row, token_row
from opencdp.storage.loyalty_ledger import ACTIVE, DUPLICATE_ENTRY
from opencdp.timeutil import isoformat_us

MAX_POINTS = 10_000_000
_ENROL_FIELDS = {
    "user_id",
    "anonymous_id",
    "email",
    "phone",
    "profile_id",
    "card_number",
    "channel",
    "store_id",
    "traits",
}
_IDENTIFYING = ("user_id", "anonymous_id", "email", "phone", "profile_id", "card_number")


# -- the programme ---------------------------------------------------------------------------
def apply_programme(rt: Runtime, workspace_id: str, document: Any) -> dict[str, Any]:
    """Check and store the workspace's programme; returns it with its version. Raises
    ProgrammeError naming the field to fix."""
    programme = parse_programme(document)
    version = rt.loyalty.put_programme(workspace_id, programme.as_dict(), rt.now_us())
    rt.loyalty_book.forget(workspace_id)
    return {"version": version, "programme": programme.as_dict()}


def get_programme(rt: Runtime, workspace_id: str) -> dict[str, Any]:
    found = rt.loyalty.programme(workspace_id)
    if found is None:
        raise NotFound(
            "this workspace has no loyalty programme: apply one with "
            "`opencdp loyalty programme apply FILE` or PUT /api/loyalty/programme"
        )
    return {"version": found[1], "programme": found[0]}


# -- enrolment -------------------------------------------------------------------------------
def enrol(rt: Runtime, workspace_id: str, body: Any, *, actor: str) -> tuple[bool, dict[str, Any]]:
    """Enrol the person ``body`` names (``user_id``, ``email``, ``phone``, ``anonymous_id``,
    ``profile_id`` or a physical ``card_number``; ``channel`` online|store, ``store_id``,
    ``traits``). Returns (created, the member view): a person who is a member already keeps
    their member (a new card is added to it)."""
    request = _enrolment(body)
    programme = get_programme(rt, workspace_id)["programme"]  # no programme, no members
    existing = _existing_member(rt, workspace_id, request)
    card = request.get("card_number")
    now = rt.now_us()
    with rt.db.write() as conn:
        new_card = card is not None and _card_is_new(
            rt, conn, workspace_id, card, existing.id if existing is not None else None
        )
        if existing is not None:
            if card is not None and new_card:
                rt.loyalty.add_tokens(
                    conn,
                    [token_row(workspace_id, existing.id, existing.profile_id, card, "card", now)],
                )
            created, member_id = False, existing.id
        else:
            member_id = new_member_id(f"{workspace_id}\x1f{uuid.uuid4()}")
            token = rt.mint_member_token(conn, workspace_id)
            tokens = [token_row(workspace_id, member_id, None, token, "digital", now)]
            if card is not None:
                tokens.append(token_row(workspace_id, member_id, None, card, "card", now))
            row = member_row(
                workspace_id,
                member_id,
                None,
                channel=request["channel"],
                store_id=request.get("store_id"),
                enrolled_us=now,
                now_us=now,
            )
            rt.loyalty.add_member(conn, row, tokens)
            rt.derived.append(
                conn,
                workspace_id,
                _enrol_messages(rt, workspace_id, request, member_id, str(programme["name"])),
                channel="api",
                actor=actor,
            )
            created = True
    return created, member_view(rt, workspace_id, member_id)


def _enrolment(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise RequestError(
            'send a JSON object, e.g. {"email": "ann@example.com"}', code="invalid_member"
        )
    unknown = sorted(set(body) - _ENROL_FIELDS)
    if unknown:
        raise RequestError(
            f"unknown fields {unknown}; a member takes {', '.join(sorted(_ENROL_FIELDS))}",
            code="invalid_member",
        )
    out: dict[str, Any] = {}
    for key in (*_IDENTIFYING, "store_id"):
        if key not in body:
            continue
        value = body[key]
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise RequestError(
                f"{key}: a non-empty text of at most 200 characters", code="invalid_member"
            )
        out[key] = value.strip()
    if "card_number" in out:
        out["card_number"] = _card_number(out["card_number"])
    if not any(k in out for k in _IDENTIFYING):
        raise RequestError(
            "name the person: user_id, email, phone, anonymous_id, profile_id or card_number",
            code="invalid_member",
        )
    channel = body.get("channel", "online")
    if not isinstance(channel, str) or channel not in ("online", "store"):
        raise RequestError("channel: online or store", code="invalid_member")
    out["channel"] = channel
    traits = body.get("traits", {})
    if not isinstance(traits, Mapping) or len(traits) > 50:
        raise RequestError("traits: an object of at most 50 traits", code="invalid_member")
    out["traits"] = dict(traits)
    return out


def _existing_member(rt: Runtime, workspace_id: str, request: Mapping[str, Any]) -> Member | None:
    refs = []
    if "profile_id" in request:
        refs.append(request["profile_id"])
    for key in ("user_id", "email", "phone", "anonymous_id"):
        if key in request:
            refs.append(f"{key}:{request[key]}")
    if "card_number" in request:
        refs.append(f"{CARD_TYPE}:{request['card_number']}")
    for ref in refs:
        try:
            profile = locate_profile(rt, workspace_id, ref)
        except NotFound:
            if ref == request.get("profile_id"):
                raise
            continue
        member = rt.loyalty.active_of_profiles(None, workspace_id, [profile.id]).get(profile.id)
        if member is not None:
            return member
    return None


def _enrol_messages(
    rt: Runtime, workspace_id: str, request: Mapping[str, Any], member_id: str, programme: str
) -> list[dict[str, Any]]:
    ids: dict[str, Any] = {}
    traits = dict(request["traits"])
    context: dict[str, Any] = {}
    if "profile_id" in request:
        from opencdp.services.internal_events import addressed_to

        profile = locate_profile(rt, workspace_id, request["profile_id"])
        address = addressed_to(rt, workspace_id, profile.id)
        ids.update({k: v for k, v in address.items() if k in ("userId", "anonymousId")})
        context.update(address.get("context", {}))
        traits.update(address.get("traits", {}))
    if "user_id" in request:
        ids["userId"] = request["user_id"]
    if "anonymous_id" in request:
        ids["anonymousId"] = request["anonymous_id"]
    if not ids:
        # Segment's messages need a user or anonymous id; a till that knows only an e-mail or
        # a card number gets one that names the enrolment
        ids["anonymousId"] = f"loyalty-{member_id}"
    for key in ("email", "phone"):
        if key in request:
            traits[key] = request[key]
    external = list(context.get("externalIds", []))
    if "card_number" in request:
        external.append(_card_identifier(request["card_number"]))
    if external:
        context["externalIds"] = external
    properties = {
        "member_id": member_id,
        "programme": programme,
        "channel": request["channel"],
        **({"card_number": request["card_number"]} if "card_number" in request else {}),
        **({"store_id": request["store_id"]} if "store_id" in request else {}),
    }
    messages: list[dict[str, Any]] = []
    if traits:
        messages.append(
            {
                "type": "identify",
                **ids,
                "traits": traits,
                "context": dict(context),
                "messageId": f"enrol-identify-{member_id}",
            }
        )
    contact = {k: traits[k] for k in ("email", "phone") if k in traits}
    track_context = {**context, **({"traits": contact} if contact else {})}
    messages.append(
        {
            "type": "track",
            "event": ENROLLED,
            **ids,
            "properties": properties,
            "context": track_context,
            "messageId": f"enrol-{member_id}",
        }
    )
    return messages


# -- members ---------------------------------------------------------------------------------
def find_member(rt: Runtime, workspace_id: str, ref: str) -> Member:
    """The live member ``ref`` names: a member id (a merged one leads to its survivor), a
    token or card number, or a profile (``type:value`` or a profile id)."""
    names_profile = ":" in ref or ref.startswith("use_")
    member = None if names_profile else rt.loyalty.member(workspace_id, ref)
    if names_profile:  # a profile before a token: no card number can stand for a profile
        try:
            profile = locate_profile(rt, workspace_id, ref)
        except (NotFound, RequestError):
            profile = None
        if profile is not None:
            member = rt.loyalty.active_of_profiles(None, workspace_id, [profile.id]).get(profile.id)
    elif member is None and is_token_shaped(ref):
        found = rt.loyalty.lookup(workspace_id, ref)
        if found is not None:
            member = rt.loyalty.member(workspace_id, found["id"])
    hops = 0
    while member is not None and member.status != "active" and member.merged_into and hops < 50:
        member = rt.loyalty.member(workspace_id, member.merged_into)
        hops += 1
    if member is None:
        raise NotFound(f"no loyalty member {ref!r}")
    return member


def member_view(rt: Runtime, workspace_id: str, ref: str) -> dict[str, Any]:
    """A member with its tokens, balance, tier and points expiring within 30 days."""
    member = find_member(rt, workspace_id, ref)
    entries = rt.loyalty.entries_of(None, workspace_id, [member.id]).get(member.id, [])
    now = rt.now_us()
    horizon = int(EXPIRING_HORIZON.total_seconds() * 1_000_000)
    tokens = rt.loyalty.tokens_of(workspace_id, member.id)
    return {
        **member_traits(member),
        "points_expiring_30d": ledger.expiring_within(entries, now, horizon),
        "token": next(
            (t["token"] for t in tokens if t["kind"] == "digital" and t["status"] == "active"),
            None,
        ),
        "cards": [t["token"] for t in tokens if t["kind"] == "card" and t["status"] == "active"],
        "tokens": [
            {
                "token": t["token"],
                "kind": t["kind"],
                "status": t["status"],
                "created_at": isoformat_us(t["created_us"]),
            }
            for t in tokens
        ],
    }


def card(rt: Runtime, workspace_id: str, ref: str, extension: str) -> tuple[bytes, str | None]:
    """The member card as ``svg`` or ``png`` (and the member's profile id): the programme,
    the member's name, tier and points, and the token as a Code 128 barcode and a QR code."""
    from opencdp.loyalty.card import CardFace, card_png, card_svg

    view = member_view(rt, workspace_id, ref)
    programme = get_programme(rt, workspace_id)["programme"]
    if view["token"] is None:
        raise NotFound(f"member {view['id']} has no active token: rotate it to issue one")
    name = None
    if view["profile_id"]:
        found = rt.profiles.trait_values(
            workspace_id, [view["profile_id"]], ["first_name", "last_name", "name"]
        ).get(view["profile_id"], {})
        given = " ".join(str(found[k]) for k in ("first_name", "last_name") if found.get(k))
        name = given or (str(found["name"]) if found.get("name") else None)
    face = CardFace(
        programme=str(programme["name"]),
        member_name=name,
        member_id=view["id"],
        token=view["token"],
        tier=view["tier"],
        points=int(view["balance"]),
    )
    content = card_svg(face).encode() if extension == "svg" else card_png(face)
    return content, view["profile_id"]


def lookup_token(rt: Runtime, workspace_id: str, token: str) -> dict[str, Any]:
    """The till's scan: the member, tier, balance and profile a token or card belongs to."""
    if not is_token_shaped(token):
        raise NotFound("no such member token")
    found = rt.loyalty.lookup(workspace_id, token)
    if found is None:
        raise NotFound("no such member token (revoked, or never issued)")
    return {
        "member_id": found["id"],
        "profile_id": found["profile_id"],
        "tier": found["tier"],
        "balance": int(found["balance"]),
        "token_kind": found["kind"],
    }


def rotate_token(rt: Runtime, workspace_id: str, ref: str) -> dict[str, Any]:
    """Revoke the member's digital token (a lost phone, a leaked image) and issue a new one."""
    member = find_member(rt, workspace_id, ref)
    now = rt.now_us()
    with rt.db.write() as conn:
        rt.loyalty.revoke_digital(conn, workspace_id, member.id, now)
        token = rt.mint_member_token(conn, workspace_id)
        rt.loyalty.add_tokens(
            conn, [token_row(workspace_id, member.id, member.profile_id, token, "digital", now)]
        )
    return member_view(rt, workspace_id, member.id)


def add_card(
    rt: Runtime, workspace_id: str, ref: str, card_number: Any, *, actor: str
) -> tuple[bool, dict[str, Any]]:
    """Give the member a physical card (a replacement for a lost one, a second card):
    (added, the member view). The card is an identifier of the member's profile from then
    on, so a till that sends it with an order earns for this member. A card of another
    member is refused (``card_taken``), and so is a revoked one (``card_revoked``)."""
    number = _card_number(card_number)
    member = find_member(rt, workspace_id, ref)
    with rt.db.write() as conn:
        rt.loyalty.lock_members(conn, workspace_id, [member.id])
        added = _card_is_new(rt, conn, workspace_id, number, member.id)
        if added:
            rt.loyalty.add_tokens(
                conn,
                [
                    token_row(
                        workspace_id, member.id, member.profile_id, number, "card", rt.now_us()
                    )
                ],
            )
    if added and member.profile_id is not None:
        from opencdp.services.internal_events import emit

        emit(
            rt,
            workspace_id,
            member.profile_id,
            {
                "type": "identify",
                "context": {"externalIds": [_card_identifier(number)]},
                "messageId": f"card-{workspace_id}-{number}",
            },
            channel="loyalty",
            actor=actor,
        )
    return added, member_view(rt, workspace_id, member.id)


def revoke_card(rt: Runtime, workspace_id: str, ref: str, card_number: str) -> dict[str, Any]:
    """Revoke one of the member's physical cards (lost or stolen): the till no longer finds
    it, it is never issued again, and the member keeps their points and other cards."""
    member = find_member(rt, workspace_id, ref)
    with rt.db.write() as conn:
        if not rt.loyalty.revoke_card(conn, workspace_id, member.id, card_number, rt.now_us()):
            raise NotFound(
                f"member {member.id} has no active card {card_number!r}", code="card_not_found"
            )
    return member_view(rt, workspace_id, member.id)


def _card_number(value: Any) -> str:
    if not isinstance(value, str) or not is_token_shaped(value.strip()):
        raise RequestError(
            "card_number: 4 to 64 letters, digits, '-' or '_'", code="invalid_member"
        )
    return value.strip()


def _card_identifier(number: str) -> dict[str, str]:
    return {"id": number, "type": CARD_TYPE, "collection": "users", "encoding": "none"}


def _card_is_new(
    rt: Runtime, conn: Connection, workspace_id: str, card: str, member_id: str | None
) -> bool:
    """Whether ``card`` is still to be given to ``member_id`` (False: it is theirs already).
    Raises Conflict when another member holds it (``card_taken``) or it was revoked
    (``card_revoked``: a lost card never comes back)."""
    found = rt.loyalty.token_in(conn, workspace_id, card)
    if found is None:
        return True
    if found["status"] != ACTIVE:
        raise Conflict(
            f"card {card} was revoked (lost or stolen): hand out another card",
            code="card_revoked",
        )
    if found["member_id"] != member_id or found["kind"] != "card":
        raise Conflict(f"card {card} belongs to another member", code="card_taken")
    return False


# -- points ----------------------------------------------------------------------------------
def redeem(
    rt: Runtime,
    workspace_id: str,
    ref: str,
    points: Any,
    reference: Any,
    *,
    reason: str | None,
    actor: str,
) -> tuple[bool, dict[str, Any]]:
    """Take ``points`` for a reward, exactly once per ``reference`` (the till's receipt or
    the shop's order): (created, the entry). Raises Conflict (``insufficient_points``) when
    the balance does not hold them; of two concurrent redemptions one may be refused."""
    amount = _points(points, positive=True)
    key = f"redeem:{_reference(reference)}"
    member = find_member(rt, workspace_id, ref)
    return _once(
        rt, workspace_id, key, lambda: _redeem(rt, workspace_id, member, amount, key, reason, actor)
    )


def _redeem(
    rt: Runtime,
    workspace_id: str,
    member: Member,
    amount: int,
    key: str,
    reason: str | None,
    actor: str,
) -> tuple[bool, dict[str, Any]]:
    with rt.db.write() as conn:
        # the member's row first: a concurrent call with the same key then finishes before
        # this one looks for its entry (and finds it), instead of both taking the points
        rt.loyalty.lock_members(conn, workspace_id, [member.id])
        done = rt.loyalty.entry_by_key(conn, workspace_id, key)
        if done is not None:
            return False, _entry_view(done)
        if not rt.loyalty.take(conn, workspace_id, member.id, amount, rt.now_us()):
            raise Conflict(
                f"member {member.id} does not have {amount} points", code="insufficient_points"
            )
        rt.loyalty_book.record(
            conn,
            workspace_id,
            [_entry(member, ledger.REDEEM, -amount, key, reason or "redeemed", actor, rt.now_us())],
            channel="loyalty",
            actor=actor,
            prepaid=[key],
        )
        entry = rt.loyalty.entry_by_key(conn, workspace_id, key)
    assert entry is not None
    return True, _entry_view(entry)


def adjust(
    rt: Runtime,
    workspace_id: str,
    ref: str,
    points: Any,
    *,
    reason: Any,
    reference: Any = None,
    actor: str,
) -> tuple[bool, dict[str, Any]]:
    """Add (or, negative, take) points by hand with a reason; a take never leaves the
    balance below zero. Exactly once per ``reference`` when one is given."""
    amount = _points(points, positive=False)
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise RequestError("reason: say why, in at most 500 characters", code="invalid_points")
    key = f"adjust:{_reference(reference) if reference is not None else uuid.uuid4()}"
    member = find_member(rt, workspace_id, ref)
    return _once(
        rt, workspace_id, key, lambda: _adjust(rt, workspace_id, member, amount, key, reason, actor)
    )


def _adjust(
    rt: Runtime,
    workspace_id: str,
    member: Member,
    amount: int,
    key: str,
    reason: str,
    actor: str,
) -> tuple[bool, dict[str, Any]]:
    with rt.db.write() as conn:
        # the member's row first: a concurrent call with the same key then finishes before
        # this one looks for its entry (and finds it), instead of both taking the points
        rt.loyalty.lock_members(conn, workspace_id, [member.id])
        done = rt.loyalty.entry_by_key(conn, workspace_id, key)
        if done is not None:
            return False, _entry_view(done)
        prepaid: list[str] = []
        if amount < 0:
            if not rt.loyalty.take(conn, workspace_id, member.id, -amount, rt.now_us()):
                raise Conflict(
                    f"member {member.id} does not have {-amount} points",
                    code="insufficient_points",
                )
            prepaid.append(key)
        rt.loyalty_book.record(
            conn,
            workspace_id,
            [_entry(member, ledger.ADJUST, amount, key, reason.strip(), actor, rt.now_us())],
            channel="loyalty",
            actor=actor,
            prepaid=prepaid,
        )
        entry = rt.loyalty.entry_by_key(conn, workspace_id, key)
    assert entry is not None
    return True, _entry_view(entry)


def _once(rt: Runtime, workspace_id: str, key: str, write: Any) -> tuple[bool, dict[str, Any]]:
    """``write()``; when a concurrent call with the same key committed first (the same
    receipt sent twice at once), the entry that call wrote, as a retry would get it."""
    try:
        result: tuple[bool, dict[str, Any]] = write()
        return result
    except Conflict as exc:
        if exc.code != DUPLICATE_ENTRY:
            raise
    with rt.db.read() as conn:
        done = rt.loyalty.entry_by_key(conn, workspace_id, key)
    if done is None:
        raise Conflict("the entry could not be written; try again", code="conflict")
    return False, _entry_view(done)


def ledger_of(
    rt: Runtime, workspace_id: str, ref: str, limit: int = 100, before: int | None = None
) -> dict[str, Any]:
    """A member's ledger, newest first, with its balance."""
    member = find_member(rt, workspace_id, ref)
    rows = rt.loyalty.ledger_page(workspace_id, member.id, limit, before)
    return {
        "member_id": member.id,
        "profile_id": member.profile_id,
        "balance": member.balance,
        "data": [_entry_view(r) for r in rows],
        "next": rows[-1]["id"] if len(rows) == limit else None,
    }


# -- helpers ---------------------------------------------------------------------------------
def _points(value: Any, *, positive: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError("points: a whole number", code="invalid_points")
    if value == 0 or abs(value) > MAX_POINTS or (positive and value < 0):
        limit = f"1 to {MAX_POINTS}" if positive else f"-{MAX_POINTS} to {MAX_POINTS}, not 0"
        raise RequestError(f"points: {limit}", code="invalid_points")
    return value


def _reference(value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise RequestError(
            "reference: the receipt or order this is for (it makes a retry harmless)",
            code="invalid_points",
        )
    text = str(value).strip()
    if len(text) > 200:
        raise RequestError("reference: at most 200 characters", code="invalid_points")
    return text


def _entry(
    member: Member, kind: str, points: int, key: str, reason: str, actor: str, now: int
) -> dict[str, Any]:
    return {
        "member_id": member.id,
        "profile_id": member.profile_id,
        "kind": kind,
        "points": points,
        "dedup_key": key,
        "reason": reason,
        "actor": actor,
        "at_us": now,
    }


def _entry_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "member_id": row["member_id"],
        "kind": row["kind"],
        "points": int(row["points"]),
        "key": row["dedup_key"],
        "order_id": row["order_id"],
        "reason": row["reason"],
        "expires_at": isoformat_us(row["expires_us"]) if row["expires_us"] else None,
        "at": isoformat_us(row["at_us"]),
        "recorded_at": isoformat_us(row["recorded_us"]),
        "actor": row["actor"],
    }


__all__ = [
    "ProgrammeError",
    "add_card",
    "adjust",
    "apply_programme",
    "card",
    "enrol",
    "find_member",
    "get_programme",
    "ledger_of",
    "lookup_token",
    "member_view",
    "redeem",
    "revoke_card",
    "rotate_token",
]
