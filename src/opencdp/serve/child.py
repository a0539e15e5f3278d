"""The children ``opencdp serve`` supervises: ``python -m opencdp.serve.child http --fd N`` (an
HTTP process on the supervisor's listening socket), ``… worker`` (a worker process; the
first also runs the dispatcher of the outbox) and ``… dispatcher`` (the dispatcher alone, with
``OPENCDP_DISPATCHER_PROCESS=true``).

All ignore SIGINT (a Ctrl-C in the terminal reaches the whole process group, but the
supervisor decides the order of stopping), stop cleanly on SIGTERM, and stop on their own when
the supervisor is gone.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
from collections.abc import Generator
from contextlib import contextmanager

import uvicorn

from opencdp.runtime import Runtime
from opencdp.serve.supervisor import exit_with_parent
from opencdp.services.privacy import install as install_privacy
from opencdp.services.recs import install as install_recs_schedule
from opencdp.settings import Settings
from opencdp.web.app import create_app
from opencdp.web.http_protocol import BoundedHeadProtocol


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGTERM only (SIGINT is the supervisor's)."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        previous = signal.signal(signal.SIGTERM, self.handle_exit)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def run_http(settings: Settings, fd: int, workers: int) -> None:
    """Serve HTTP on the inherited listening socket ``fd`` until SIGTERM."""
    runtime = Runtime(settings)
    try:
        app = create_app(runtime, start_worker=False, workers_beside=workers)
        config = uvicorn.Config(
            app,
            log_level=settings.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=10,
            http=BoundedHeadProtocol,
        )
        _Server(config).run(sockets=[socket.socket(fileno=fd)])
    finally:
        runtime.close()


def run_worker(settings: Settings, slot: int | None = None, slots: int | None = None) -> None:
    """Process the inbox (worker ``slot`` of ``slots``' partitions) until SIGTERM; the batch
    under way is finished first."""
    runtime = Runtime(settings)
    install_privacy(runtime)
    install_recs_schedule(runtime)
    try:
        if slot is not None and slots is not None:
            runtime.worker.take_slot(slot, slots)
        if not slot and settings.dispatcher_in_worker:  # the first worker sends the outbox
            runtime.dispatcher.start()
        runtime.worker.run_until_terminated()
    finally:
        runtime.close()


def run_dispatcher(settings: Settings) -> None:
    """Send the outbox until SIGTERM; the sends under way finish first."""
    runtime = Runtime(settings)
    try:
        runtime.dispatcher.run_until_terminated()
    finally:
        runtime.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m opencdp.serve.child")
    parser.add_argument("--parent", type=int, default=None, help="the supervisor's pid")
    sub = parser.add_subparsers(dest="role", required=True)
    http = sub.add_parser("http")
    http.add_argument("--fd", type=int, required=True)
    http.add_argument("--workers", type=int, default=0)
    worker = sub.add_parser("worker")
    worker.add_argument("--slot", type=int, default=None)
    worker.add_argument("--slots", type=int, default=None)
    sub.add_parser("dispatcher")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(args.parent)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.role == "http":
        run_http(settings, args.fd, args.workers)
    elif args.role == "dispatcher":
        run_dispatcher(settings)
    else:
        run_worker(settings, args.slot, args.slots)


if __name__ == "__main__":
    main()
