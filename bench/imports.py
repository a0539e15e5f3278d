"""Import benchmark: rows/s and peak RSS of ``opencdp import`` with identity resolution, on
SQLite and PostgreSQL.

Two files: the real CDNOW history (69,659 orders) and a generated Magento 2 orders grid export
(1,000,000 orders of 100,000 customers; ``--quick``: 100,000 orders). Each import runs in its own
process on a fresh database, so its peak RSS (``VmHWM``) is the import's alone (PostgreSQL's
own processes are not counted).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
TARGET_ROWS_PER_S = 50_000
TARGET_RSS_MIB = 500


def _child(file: str, mapping: str, data_dir: str, database_url: str) -> None:
    """Run one import in this process and print what it measured as JSON."""
    from opencdp.imports.presets import resolve_file, resolve_mapping
    from opencdp.runtime import Runtime
    from opencdp.services.import_runs import ImportRequest, import_file
    from opencdp.settings import Settings

    url = {"database_url": database_url} if database_url else {}
    rt = Runtime(Settings(data_dir=Path(data_dir), **url))
    path = resolve_file(file)
    started = time.perf_counter()
    report = import_file(rt, ImportRequest(path, resolve_mapping(mapping, "orders")))
    seconds = time.perf_counter() - started
    rt.close()
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                status[key] = int(value.split()[0])
    imported = report["imported"]
    print(
        json.dumps(
            {
                "rows": report["rows"],
                "events": imported["new_events"],
                "profiles": imported["profiles_created"],
                "quarantined": imported["quarantined"],
                "seconds": round(seconds, 2),
                "rows_per_s": round(report["rows"] / seconds),
                "peak_rss_mib": round(status.get("VmHWM", 0) / 1024, 1),
            }
        )
    )


def _measure(file: str, mapping: str, console: Console, database_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="opencdp-bench-import-") as data:
        out = subprocess.run(
            [sys.executable, __file__, "--child", file, mapping, data, database_url],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
    if out.returncode != 0:
        console.print(f"[red]import of {file} failed:[/red]\n{out.stderr[-3000:]}")
        raise RuntimeError(f"import benchmark of {file} failed")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(
    backends: list[str], *, pg: Any, quick: bool, console: Console, orders: int | None = None
) -> dict[str, Any]:
    """Import CDNOW and a generated orders file on each backend; returns the measurements."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.support.magento import write_orders

    n = orders or (100_000 if quick else 1_000_000)
    results: dict[str, Any] = {
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "target_rss_mib": TARGET_RSS_MIB,
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="opencdp-bench-orders-") as tmp:
        path = Path(tmp) / "orders.csv"
        console.print(f"import: generating {n:,} Magento orders …")
        write_orders(path, n, customers=max(1, n // 10))
        size = path.stat().st_size
        for backend in backends:
            if backend == "postgres" and pg is None:
                continue
            url = pg.new_database if backend == "postgres" else lambda: ""
            console.print(f"import on {backend}: CDNOW_master.txt (69,659 orders) …")
            cdnow = _measure("cdnow", "cdnow", console, url())
            console.print(f"import on {backend}: {path.name} ({size / 1e6:.0f} MB) …")
            generated = _measure(str(path), "magento2-orders", console, url())
            generated.update(orders=n, file_mb=round(size / 1e6, 1))
            results["backends"][backend] = {"cdnow": cdnow, "generated": generated}
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        print(
            json.dumps(
                run(["sqlite"], pg=None, quick="--quick" in sys.argv, console=Console()), indent=2
            )
        )
