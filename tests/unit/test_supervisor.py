"""The supervisor of ``opencdp serve``'s children, driven with tiny real child processes."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from opencdp.serve.supervisor import MAX_QUICK_EXITS, ChildSpec, Supervisor


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _supervise(sup: Supervisor) -> tuple[threading.Thread, list[int]]:
    """Run the supervisor in a thread (built with ``handle_signals=False``: signal handlers
    can only be installed in the main thread)."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(sup.run()), daemon=True)
    thread.start()
    return thread, result


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_a_child_that_dies_is_restarted(tmp_path: Path) -> None:
    # Given a child that records each start, then runs until stopped
    starts = tmp_path / "starts"
    code = f"open({str(starts)!r}, 'a').write('x'); import time; time.sleep(600)"
    sup = Supervisor(
        [ChildSpec("sleeper", _python(code), dict(os.environ))],
        restart_base=0.01,
        handle_signals=False,
    )
    thread, result = _supervise(sup)
    try:
        _wait_for(lambda: "sleeper" in sup.pids() and starts.exists())
        first = sup.pids()["sleeper"]
        # When it is killed
        os.kill(first, signal.SIGKILL)
        # Then a new one runs in its place
        _wait_for(lambda: sup.pids().get("sleeper") not in (None, first))
        _wait_for(lambda: starts.read_text() == "xx")
    finally:
        sup.request_stop()
        thread.join(30)
    assert result == [0]
    assert sup.children[0].restarts == 1


def test_a_child_that_keeps_failing_at_start_stops_everything(tmp_path: Path) -> None:
    # Given one healthy child and one that exits at once, every time
    healthy = ChildSpec("healthy", _python("import time; time.sleep(600)"), dict(os.environ))
    broken = ChildSpec("broken", _python("raise SystemExit(3)"), dict(os.environ))
    sup = Supervisor([healthy, broken], restart_base=0.01, handle_signals=False)
    thread, result = _supervise(sup)
    thread.join(60)
    # Then the supervisor gives up after MAX_QUICK_EXITS, says why and stops the healthy one too
    assert result == [1]
    assert sup.children[1].exits == [3] * MAX_QUICK_EXITS
    assert sup.failed is not None and "broken" in sup.failed
    assert sup.pids() == {}


def test_stop_goes_in_order_and_kills_what_outlives_the_grace(tmp_path: Path) -> None:
    # Given an HTTP-like child (stops first) that logs its SIGTERM, and a worker-like child
    # that ignores SIGTERM
    log = tmp_path / "order"
    first = _python(
        "import signal, sys, time\n"
        f"def bye(*_):\n    open({str(log)!r}, 'a').write('http ')\n    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f"open({str(log) + '.http'!r}, 'w').close()\ntime.sleep(600)"
    )
    stubborn = _python(
        "import signal, time\n"
        f"open({str(log) + '.ready'!r}, 'w').close()\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"
    )
    sup = Supervisor(
        [
            ChildSpec("worker", stubborn, dict(os.environ), stop_order=1),
            ChildSpec("http", first, dict(os.environ), stop_order=0),
        ],
        grace=1.0,
        handle_signals=False,
    )
    thread, result = _supervise(sup)
    _wait_for(lambda: all(Path(f"{log}.{n}").exists() for n in ("http", "ready")))
    procs = {c.spec.name: c.proc for c in sup.children}
    # When told to stop
    sup.request_stop()
    thread.join(30)
    # Then the HTTP child stopped cleanly on SIGTERM and the stubborn one was killed
    assert result == [0]
    assert log.read_text() == "http "
    assert procs["http"] is not None and procs["http"].returncode == 0
    assert procs["worker"] is not None and procs["worker"].returncode == -signal.SIGKILL


def test_several_workers_split_the_partitions_between_them() -> None:
    from opencdp.collect.partition import PARTITIONS, partition_of, slot_partitions
    from opencdp.serve import child_specs
    from opencdp.settings import Settings

    specs = child_specs(
        Settings(database_url="postgresql+psycopg://x/y"), None, processes=1, workers=3
    )
    slots = [spec.argv[spec.argv.index("--slot") + 1] for spec in specs]
    assert slots == ["0", "1", "2"] and all("--slots" in s.argv for s in specs)
    owned = sorted(p for i in range(3) for p in slot_partitions(i, 3))
    assert owned == list(range(PARTITIONS))  # every partition, each once
    # The first identifier decides: a device keeps its partition before and after a login
    anon = {"anonymousId": "a-1", "messageId": "m1"}
    assert partition_of(anon) == partition_of({**anon, "userId": "u-1", "messageId": "m2"})
    assert partition_of({"userId": "u-1"}) == partition_of({"userId": "u-1", "messageId": "x"})
    assert 0 <= partition_of({}) < PARTITIONS


def test_a_child_whose_supervisor_died_before_it_started_watching_stops() -> None:
    """The child is told its supervisor's pid: if its parent is already someone else (the
    supervisor was killed while the child still imported), it stops at the first check."""
    import subprocess

    script = (
        "import time\n"
        "from opencdp.serve.supervisor import exit_with_parent\n"
        "exit_with_parent(parent=1, interval=0.05)\n"  # pid 1 is not this child's parent
        "time.sleep(20)\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], timeout=15, check=False)
    assert proc.returncode == -signal.SIGTERM
    assert time.monotonic() - started < 15


def test_children_are_told_the_supervisors_pid() -> None:
    from opencdp.serve import child_specs
    from opencdp.settings import Settings

    for spec in child_specs(Settings(), None, processes=1, workers=1):
        assert spec.argv[spec.argv.index("--parent") + 1] == str(os.getpid())
