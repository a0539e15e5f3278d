"""What the HTTP destination types (``webhook``, ``segment``) share: which targets they may
reach, the client they send with, and how a request's outcome becomes an :class:`Attempt`.

Targets: an absolute ``http(s)`` URL; plain ``http`` only with ``allow_http``; loopback,
private, link-local, reserved and unspecified addresses only with ``allow_private_targets``
— checked on the URL's host when settings are validated, and again on what the host resolves
to before every request (``refused_target``), so that a name pointing inside cannot be used
for server-side request forgery. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from opencdp.activate.destinations.base import Attempt, cut
from opencdp.version import __version__

#: the most of a request body kept in a delivery's record
REQUEST_BODY_KEPT = 256 * 1024
#: the most of a response body kept in a delivery's record
RESPONSE_BODY_KEPT = 64 * 1024


def check_target(url: str, *, allow_http: bool, allow_private_targets: bool) -> None:
    """Raise ``ValueError`` (saying which setting allows it) unless ``url`` is a target the
    settings permit; the host is not resolved here (see :func:`send`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"url: {url!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not allow_http:
        raise ValueError("url: plain http is refused; use https or set allow_http")
    if not allow_private_targets and private(parts.hostname, resolve=False):
        raise ValueError(
            f"url: {parts.hostname} is a loopback, private or link-local address; "
            "set allow_private_targets to send there"
        )


def private(host: str, *, resolve: bool) -> bool:
    """Whether ``host`` is (or, with ``resolve``, resolves to) an address OpenCDP must not
    reach by default (server-side request forgery)."""
    try:
        addresses = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return True
        if not resolve:
            return False
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            return False  # the request fails with a DNS error, retried
        addresses = [ipaddress.ip_address(i[4][0]) for i in infos]
    return any(_not_public(a) for a in addresses)


def _not_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything but a public unicast address: loopback, private, link-local, carrier-grade
    NAT (100.64/10), documentation, benchmarking and reserved ranges, multicast, and those
    written as IPv4-mapped IPv6 (``::ffff:10.0.0.1``)."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return not address.is_global or address.is_multicast


def new_client(timeout_seconds: float) -> httpx.Client:
    """The client a destination sends with: its timeout (connecting within at most 5 s), no
    redirects followed, OpenCDP's user agent."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
        follow_redirects=False,
        headers={"user-agent": f"OpenCDP/{__version__}"},
    )


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    record: dict[str, Any],
    allow_private_targets: bool,
) -> Attempt:
    """Make one request and say what happened; never raises for the receiver's failure.

    ``record`` is what the delivery keeps of the request (without secrets). A host that
    resolves to a private address without ``allow_private_targets`` is ``refused_target``; a
    transport failure is ``timeout``, ``tls``, ``connection`` or ``connection: <kind>``.
    """
    host = urlsplit(url).hostname or ""
    if not allow_private_targets and private(host, resolve=True):
        return Attempt(None, "refused_target", request=record)
    try:
        answer = client.request(method, url, content=content, headers=headers)
    except httpx.TimeoutException:
        return Attempt(None, "timeout", request=record)
    except httpx.ConnectError as exc:
        kind = "tls" if "SSL" in str(exc) or "certificate" in str(exc) else "connection"
        return Attempt(None, kind, request=record)
    except httpx.HTTPError as exc:
        return Attempt(None, f"connection: {type(exc).__name__}", request=record)
    response = {
        "status": answer.status_code,
        "headers": dict(answer.headers),
        "body": cut(answer.content, RESPONSE_BODY_KEPT),
    }
    return Attempt(
        answer.status_code,
        retry_after=answer.headers.get("retry-after"),
        request=record,
        response=response,
    )
