"""Campaign QR codes, from print to profile (``docs/qr-codes.md``): a short link ``/q/{code}``
to a registered URL, printed as a QR code on posters, receipts and packaging. A scan records
``QR Code Scanned`` with the campaign on the visitor (the ``ajs_anonymous_id`` cookie that
analytics.js reads, so a later ``identify`` on the same site joins the scan to the person)
and redirects to the registered URL — only ever that one, so the link cannot be made an open
redirect.

The event is an ordinary track event committed through the collector from the workspace's
internal source (``services/internal_events.py``) and applied by the worker.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

from opencdp.errors import NotFound, RequestError, loggable
from opencdp.runtime import Runtime
from opencdp.services.internal_events import internal_source
from opencdp.storage.qr_codes import QrCode
from opencdp.timeutil import isoformat_us

log = logging.getLogger(__name__)

#: the event a scan records
SCANNED = "QR Code Scanned"
#: what a code looks like (the path of a short link); new codes are 12 characters
CODE_PATTERN = re.compile(r"[A-Za-z0-9_\-]{10,32}")
CODE_LENGTH = 12
MAX_CAMPAIGN = 200
#: a campaign name: printable (no control characters) and not blank; also the OpenAPI pattern
CAMPAIGN_PATTERN = (
    "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$"
)
_CAMPAIGN = re.compile(CAMPAIGN_PATTERN)
MAX_TARGET = 2000
#: what an anonymous id from a cookie may look like (else the visitor gets a new one)
_ANONYMOUS_ID = re.compile(r"[\x21-\x7e]{1,128}")


def new_code() -> str:
    """A fresh code: 12 URL-safe characters, 72 random bits (unguessable, short to print)."""
    return secrets.token_urlsafe(16)[:CODE_LENGTH]


def is_code_shaped(value: str) -> bool:
    return CODE_PATTERN.fullmatch(value) is not None


def check_campaign(campaign: Any) -> str:
    """The campaign name, or a RequestError saying what to fix."""
    if not isinstance(campaign, str) or not campaign.strip():
        raise RequestError("campaign: a name such as spring-posters", code="invalid_qr")
    if len(campaign) > MAX_CAMPAIGN or not _CAMPAIGN.fullmatch(campaign):
        raise RequestError(
            f"campaign: at most {MAX_CAMPAIGN} characters, no control characters",
            code="invalid_qr",
        )
    return campaign


def check_target(target: Any) -> str:
    """The target URL, or a RequestError saying what to fix: an absolute ``http`` or
    ``https`` URL with a host and without credentials, white space or backslashes."""
    if not isinstance(target, str) or not target:
        raise RequestError("target: an absolute http(s) URL", code="invalid_qr")
    if len(target) > MAX_TARGET:
        raise RequestError(f"target: at most {MAX_TARGET} characters", code="invalid_qr")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in target):
        raise RequestError(
            "target: no white space, control characters or backslashes (percent-encode them)",
            code="invalid_qr",
        )
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not one
    except ValueError:
        raise RequestError(f"target: {target!r} is not a URL", code="invalid_qr") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RequestError(
            "target: an absolute http(s) URL such as https://shop.example/spring",
            code="invalid_qr",
        )
    if "@" in parts.netloc:
        raise RequestError(
            "target: no user name or password in the URL (user:password@host)", code="invalid_qr"
        )
    return target


def short_url(base_url: str, code: str) -> str:
    """``<base>/q/<code>``."""
    return f"{base_url.rstrip('/')}/q/{code}"


def view(qr: QrCode, base_url: str) -> dict[str, Any]:
    """A code as the API and the CLI show it."""
    return {
        "code": qr.code,
        "campaign": qr.campaign,
        "target": qr.target,
        "short_url": short_url(base_url, qr.code),
        "created_at": isoformat_us(qr.created_us),
        "disabled_at": isoformat_us(qr.disabled_us) if qr.disabled_us is not None else None,
    }


def add_qr(rt: Runtime, workspace_id: str, campaign: Any, target: Any) -> str:
    """Register a code for ``campaign`` that sends scans to ``target``; returns the code.
    Raises RequestError for a bad campaign or target, NotFound for an unknown workspace."""
    campaign = check_campaign(campaign)
    target = check_target(target)
    if not rt.admin.workspace_exists(workspace_id):
        raise NotFound(f"no workspace {workspace_id!r}")
    for _ in range(10):  # 72 random bits: a collision is all but impossible, still handled
        code = new_code()
        if rt.qr_codes.add(QrCode(code, workspace_id, campaign, target, rt.now_us(), None)):
            return code
    raise RequestError("could not find a free code; try again", code="qr_code_taken")


def get_qr(rt: Runtime, workspace_id: str, code: str) -> QrCode:
    """The workspace's code (disabled ones too), or NotFound."""
    found = rt.qr_codes.get(code) if is_code_shaped(code) else None
    if found is None or found.workspace_id != workspace_id:
        raise NotFound(f"no QR code {code!r}")
    return found


def list_qr(rt: Runtime, workspace_id: str, campaign: str | None = None) -> list[QrCode]:
    """The workspace's codes, newest first."""
    return rt.qr_codes.list(workspace_id, campaign=campaign)


def disable_qr(rt: Runtime, workspace_id: str, code: str) -> bool:
    """Disable the workspace's code: scans answer 404 from now on. True when it was active."""
    get_qr(rt, workspace_id, code)
    return rt.qr_codes.disable(workspace_id, code, rt.now_us())


def qr_image(rt: Runtime, workspace_id: str, code: str, base_url: str, extension: str) -> bytes:
    """The QR code of the code's short URL, ``svg`` or ``png``."""
    from opencdp.loyalty.card import qr_png, qr_svg

    url = short_url(base_url, get_qr(rt, workspace_id, code).code)
    return qr_svg(url).encode("utf-8") if extension == "svg" else qr_png(url)


def anonymous_id_from_cookie(value: str | None) -> str | None:
    """The anonymous id analytics.js keeps in its ``ajs_anonymous_id`` cookie: JSON-quoted and
    percent-encoded (``%22abc%22``), or plain. None when absent or not an id."""
    if not value:
        return None
    text = unquote(value).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text if _ANONYMOUS_ID.fullmatch(text) else None


def scan(
    rt: Runtime,
    code: str,
    anonymous_id: str | None,
    user_agent: str | None,
    ip: str | None,
) -> tuple[str, str, dict[str, Any]]:
    """Record a scan of ``code`` by the visitor ``anonymous_id`` (a new one when None) and
    return ``(target, anonymous_id, message)``: the registered URL to redirect to, the
    visitor's id and the ``QR Code Scanned`` event committed to the inbox. An unknown or
    disabled code raises NotFound."""
    found = rt.qr_codes.get(code) if is_code_shaped(code) else None
    if found is None or not found.active:
        raise NotFound("no such QR code")
    visitor = anonymous_id or str(uuid.uuid4())
    context: dict[str, Any] = {
        "campaign": {"name": found.campaign, "source": "qr", "medium": "print"},
        "library": {"name": "opencdp-qr"},
    }
    if user_agent:
        context["userAgent"] = user_agent[:1000]
    if ip:
        context["ip"] = ip
    message: dict[str, Any] = {
        "type": "track",
        "event": SCANNED,
        "anonymousId": visitor,
        "messageId": f"qr-{uuid.uuid4()}",
        "properties": {"campaign": found.campaign, "code": found.code, "target": found.target},
        "context": context,
    }
    try:
        result = rt.collector.ingest_messages(internal_source(rt, found.workspace_id), [message])
    except Exception as exc:  # the visitor goes on: a lost scan beats a broken poster
        log.error("the scan of QR code %s was not recorded: %s", found.code, loggable(exc))
        return found.target, visitor, message
    if result.quarantined:  # kept in the quarantine with its reason; the visitor goes on
        log.warning("a scan of QR code %s was quarantined", found.code)
    return found.target, visitor, message
