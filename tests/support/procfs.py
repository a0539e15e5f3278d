"""Reads of ``/proc`` (psutil is not a dependency): the live-server helper's CPU and memory
figures, and the benchmarks' PostgreSQL backends."""

from __future__ import annotations

import glob
import os


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a live process, in KiB."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(rest.split()[0])
    except FileNotFoundError:
        pass
    return out


def child_pids(pid: int) -> list[int]:
    """Pids of the live direct children of ``pid`` (``serve`` forks its HTTP and worker
    processes; the PostgreSQL postmaster its backends)."""
    out = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("PPid:"):
                        if int(line.split()[1]) == pid:
                            out.append(int(status.split("/")[2]))
                        break
        except (OSError, ValueError):
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
