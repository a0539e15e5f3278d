"""A throwaway PostgreSQL cluster for the test session (infra.md recipe A).

Started from the local binaries; as root, the server runs as the ``postgres`` user. When it
cannot start, local runs skip the PostgreSQL tests, but a CI run (``CI=true``) fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Settings for tests: no durability, so that hundreds of small databases are cheap.
FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200")


class PostgresCluster:
    """initdb + pg_ctl start on a free loopback port; ``stop()`` removes it.

    ``settings`` are ``-c`` server settings (default :data:`FAST`; benchmarks pass durable ones).
    """

    def __init__(self, settings: tuple[str, ...] = FAST, prefix: str = "opencdp-pg-") -> None:
        initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) are not installed")
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.datadir = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        os.chmod(self.root, 0o755)
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            # Every ancestor must be traversable by postgres.
            for parent in self.root.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        self._run(
            [
                initdb,
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        self._run(
            [
                pg_ctl,
                "-D",
                str(self.datadir),
                "-l",
                str(self.root / "server.log"),
                "-w",
                "start",
                "-o",
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                + " ".join(f"-c {setting}" for setting in settings),
            ]
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._n = 0

    def _run(self, cmd: list[str]) -> None:
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.root / "server.log"
            extra = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{cmd[0]} failed: {result.stderr}\n{extra}")

    def new_database(self, template: str | None = None) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL. With ``template`` (a URL
        :meth:`new_database` returned, with no open connection), a copy of that database."""
        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        copy = "" if template is None else f' TEMPLATE "{template.rsplit("/", 1)[1]}"'
        self.execute(f'CREATE DATABASE "{name}"{copy}')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def execute(self, statement: str, url: str | None = None) -> None:
        """Run one statement outside a transaction, in the database of ``url`` (a URL
        :meth:`new_database` returned; default the ``postgres`` database)."""
        import psycopg

        dbname = "postgres" if url is None else url.rsplit("/", 1)[1]
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}", autocommit=True
        ) as conn:
            conn.execute(statement)

    def backend_pids(self) -> list[int]:
        """Pids of the postmaster and its backends (for CPU and memory readings)."""
        try:
            main = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = Path(f"/proc/{main}/task/{main}/children")
        try:
            return [main, *(int(p) for p in children.read_text().split())]
        except OSError:
            return [main]

    def stop(self) -> None:
        try:
            self._run([self.pg_ctl, "-D", str(self.datadir), "-m", "immediate", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
