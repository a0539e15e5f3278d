"""The demo's mailbox: a local SMTP server (aiosmtpd) on a loopback port that keeps every mail
it accepts as an ``.eml`` file, so the demo's journeys (abandoned cart, welcome) send real
e-mail through the ``smtp`` destination without reaching anybody. Open the files with any mail
program, or read them as text."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _Keep:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        with self.lock:
            n = next(self.count)
        name = f"{n:05d}-{envelope.rcpt_tos[0].replace('@', '_at_')}.eml"
        data = envelope.original_content or envelope.content
        (self.directory / name).write_bytes(data if isinstance(data, bytes) else data.encode())
        return "250 OK kept"


class _Loopback(Controller):
    """aiosmtpd's controller on a port the system chooses (``port=0``)."""

    def _trigger_server(self) -> None:
        server: Any = self.server
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class Mailbox:
    """``with Mailbox(directory) as box:`` … ``box.port``: an SMTP server on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.controller = _Loopback(_Keep(directory), hostname="127.0.0.1", port=0)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.controller.stop()
