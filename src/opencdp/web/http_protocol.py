"""The HTTP/1.1 protocol ``opencdp serve`` runs: uvicorn's httptools protocol with a bound on
the request head.

httptools reads request lines and headers of any size, so a client could make the server hold
megabytes of headers per connection. Past :data:`MAX_HEAD_BYTES` (request line plus headers)
the request is answered ``431 Request Header Fields Too Large`` with the usual JSON error body,
and the connection is closed.
"""

from __future__ import annotations

from typing import Final

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

#: Request line plus headers. Browsers send a few KB; big cookie jars stay far below this.
MAX_HEAD_BYTES: Final = 64 * 1024

#: What ``uvicorn.run(http=…)`` takes to use this protocol (also in worker processes).
IMPORT_PATH: Final = "opencdp.web.http_protocol:BoundedHeadProtocol"


class HeadTooLarge(Exception):
    """Raised from a parser callback; httptools stops parsing and re-raises it."""


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that answers 431 to a request head over the limit."""

    _head_bytes = 0
    _head_too_large = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error with a plain-text 400; ours was a head too large.
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        body = orjson.dumps(
            {
                "code": "request_header_fields_too_large",
                "message": f"the request line and headers exceed {MAX_HEAD_BYTES} bytes; "
                "send smaller headers (cookies, tokens)",
            }
        )
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(head))
        self.transport.close()
