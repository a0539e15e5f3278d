"""Loopback sockets for transport failures: a port nothing listens on, a server that never
answers."""

from __future__ import annotations

import socket


class SilentServer:
    """A TCP server that accepts and never says a word (an SMTP server that hangs)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port: int = self.socket.getsockname()[1]

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.socket.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
