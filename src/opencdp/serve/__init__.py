"""``opencdp serve`` as deployed: HTTP processes and worker processes side by side, supervised.

The command's own process prepares the database once (migrations, bootstrap credentials), binds
the listening socket, then becomes the :class:`~opencdp.serve.supervisor.Supervisor` of its
children: ``processes`` HTTP processes sharing that socket (they only authenticate, validate and
commit to the inbox) and ``workers`` worker processes (they resolve identity and update
profiles). Each child is ``python -m opencdp.serve.child …`` with the same environment, so it
builds its own runtime from the same settings.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile

from rich.console import Console

from opencdp.collect.partition import PARTITIONS
from opencdp.errors import ConfigurationError
from opencdp.metrics import MULTIPROCESS_DIR
from opencdp.serve.supervisor import ChildSpec, Supervisor
from opencdp.settings import Settings

log = logging.getLogger(__name__)


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse a worker count the backend cannot use."""
    if workers < 0:
        raise ConfigurationError(f"--workers must be 0 or more, not {workers}")
    if workers > PARTITIONS:
        raise ConfigurationError(f"--workers can be at most {PARTITIONS} (inbox partitions)")
    if workers > 1 and settings.resolved_database_url().startswith("sqlite"):
        raise ConfigurationError(
            f"SQLite has a single writer: {workers} workers would only queue on its lock. Use "
            "--workers 1, or PostgreSQL (OPENCDP_DATABASE_URL=postgresql+psycopg://…) to run "
            "several workers on partitions of the inbox."
        )


def bind(host: str, port: int, advice: str = "pick another port with --port") -> socket.socket:
    """The listening socket every HTTP process shares (bound here, before any child starts,
    so that a taken port is one clear error, ending with ``advice``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot serve on {host}:{port} ({exc.strerror}): stop what runs there, or {advice}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def child_environment(settings: Settings, metrics_dir: str | None = None) -> dict[str, str]:
    """The children's environment: this one, plus the settings that came from flags and the
    directory where they share their metrics."""
    env = dict(os.environ)
    if metrics_dir is not None:
        env[MULTIPROCESS_DIR] = metrics_dir
    env["OPENCDP_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["OPENCDP_DATABASE_URL"] = settings.database_url
    return env


def child_specs(
    settings: Settings,
    sock: socket.socket | None,
    *,
    processes: int,
    workers: int,
    metrics_dir: str | None = None,
) -> list[ChildSpec]:
    """HTTP children (stopped first) and worker children (stopped after them)."""
    env = child_environment(settings, metrics_dir)
    # --parent: a child the supervisor is killed before (while it still imports) would
    # otherwise take its new parent for the supervisor and run on as an orphan.
    entry = [sys.executable, "-m", "opencdp.serve.child", "--parent", str(os.getpid())]
    specs = []
    if sock is not None:
        fd = sock.fileno()
        specs += [
            ChildSpec(
                f"http-{i + 1}",
                [*entry, "http", "--fd", str(fd), "--workers", str(workers)],
                env,
                stop_order=0,
                pass_fds=(fd,),
            )
            for i in range(processes)
        ]
    # The dispatcher in a process of its own: the workers then send nothing themselves.
    dispatcher = settings.dispatcher_process and workers > 0
    worker_env = {**env, "OPENCDP_DISPATCHER_IN_WORKER": "false"} if dispatcher else env
    # Several workers split the inbox's partitions: each partition in order, by one worker.
    for i in range(workers):
        slot = ["--slot", str(i), "--slots", str(workers)] if workers > 1 else []
        specs.append(
            ChildSpec(f"worker-{i + 1}", [*entry, "worker", *slot], worker_env, stop_order=1)
        )
    if dispatcher:
        specs.append(ChildSpec("dispatcher", [*entry, "dispatcher"], env, stop_order=1))
    return specs


def serve(settings: Settings, *, processes: int, workers: int, console: Console) -> int:
    """Prepare the database, then run and supervise the children until SIGTERM/SIGINT;
    returns the exit status."""
    from opencdp.runtime import Runtime

    check_workers(settings, workers)
    sock = bind(settings.host, settings.port)
    try:
        runtime = Runtime(settings)  # migrations and bootstrap credentials, once, up front
        database = runtime.db.describe()
        runtime.close()
        console.print(
            f"OpenCDP on http://{settings.host}:{settings.port} (database: {database}, "
            f"HTTP processes: {processes}, worker processes: {workers})"
        )
        # Fresh for every start: counters count from zero, like those of a single process.
        with tempfile.TemporaryDirectory(prefix="opencdp-metrics-") as metrics_dir:
            specs = child_specs(
                settings, sock, processes=processes, workers=workers, metrics_dir=metrics_dir
            )
            return Supervisor(specs).run()
    finally:
        sock.close()
