"""``opencdp demo``: load the real CDNOW history and the omnichannel layer through the same
collector and worker as live traffic, show what identity resolution made of it, then serve."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from opencdp.errors import ConfigurationError
from opencdp.query.parser import DefinitionKind
from opencdp.services import clv, compute, recs
from opencdp.settings import Settings
from opencdp.storage.admin import DEFAULT_WORKSPACE

DEMO_WRITE_KEY = "demo-write-key"
DEMO_TOKEN = "demo-token"
#: a customer-service token of the demo: profile look-ups only, every read audited
DEMO_SUPPORT_TOKEN = "demo-support-token"
CHUNK = 2000
KINDS: tuple[DefinitionKind, ...] = ("trait", "audience")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    )


def load_demo(runtime: Any, *, customers: int | None, console: Console) -> dict[str, Any]:
    """Ingest and process the demo data; returns the ground truth it should match."""
    from opencdp.demo.data import DEMO_IDENTITY_TRAIT_KEYS, expected_summary, iter_demo_messages
    from opencdp.demo.retail import load_retail

    admin = runtime.admin
    overrides = admin.identity_config(DEFAULT_WORKSPACE) or {}
    trait_keys = {**overrides.get("trait_keys", {}), **DEMO_IDENTITY_TRAIT_KEYS}
    if overrides.get("trait_keys") != trait_keys:
        admin.set_identity_config(DEFAULT_WORKSPACE, {**overrides, "trait_keys": trait_keys})
        runtime.invalidate_identity_config(DEFAULT_WORKSPACE)
    source = admin.ensure_source_with_key(
        DEFAULT_WORKSPACE, "demo", DEMO_WRITE_KEY, runtime.now_us()
    )
    admin.ensure_token(DEFAULT_WORKSPACE, "demo", DEMO_TOKEN, runtime.now_us())
    if admin.token_for_secret(DEMO_SUPPORT_TOKEN) is None:
        admin.add_token(
            DEFAULT_WORKSPACE, "demo-support", runtime.now_us(), "support", DEMO_SUPPORT_TOKEN
        )

    truth = expected_summary(7, True, customers)
    total = int(truth["messages"])
    clock = runtime.clock
    with _progress(console) as progress:
        task = progress.add_task("collecting", total=total, rate="")
        started = clock.monotonic()
        done = 0
        messages = iter_demo_messages(7, omnichannel=True, limit_customers=customers)
        while chunk := list(itertools.islice(messages, CHUNK)):
            runtime.collector.ingest_messages(source, chunk)
            done += len(chunk)
            rate = done / max(clock.monotonic() - started, 1e-6)
            progress.update(task, completed=done, rate=f"{rate:,.0f} events/s")
        pending = runtime.inbox.pending()
        task = progress.add_task("resolving identities", total=pending, rate="")
        started = clock.monotonic()
        processed = 0
        while (n := runtime.processor.run_once(5000)) > 0:
            processed += n
            rate = processed / max(clock.monotonic() - started, 1e-6)
            progress.update(task, completed=processed, rate=f"{rate:,.0f} events/s")
        task = progress.add_task("catalog, stock and loyalty members", total=1, rate="")
        truth["retail"] = load_retail(runtime, 7, customers)
        progress.advance(task)
        task = progress.add_task("computing the retail traits and audiences", total=3, rate="")
        clv.fit(runtime, DEFAULT_WORKSPACE, None)  # predicted CLV on all orders up to today
        progress.advance(task)
        for kind in KINDS:
            compute.apply_preset(runtime, DEFAULT_WORKSPACE, kind, "retail")
            progress.advance(task)
        task = progress.add_task("training the recommendations", total=1, rate="")
        truth["recs"] = recs.train(runtime, DEFAULT_WORKSPACE, source="cli")
        progress.advance(task)
    return truth


#: the demo's abandoned-cart wait: short enough to see the e-mail during the tour
DEMO_CART_WAIT = "2 minutes"


def start_journeys(runtime: Any, mail_port: int) -> None:
    """An ``smtp`` destination to the demo's mailbox, and the abandoned-cart, welcome,
    back-in-stock and loyalty-welcome presets sending through it."""
    from opencdp.services import destinations, journeys

    destinations.put_destination(
        runtime,
        DEFAULT_WORKSPACE,
        "mail",
        {
            "type": "smtp",
            "settings": {
                "host": "127.0.0.1",
                "port": mail_port,
                "from": "OpenCDP demo shop <shop@demo.opencdp.test>",
                "starttls": False,
                "retry": {"initial_backoff": "1 second", "max_age": "1 day"},
            },
        },
    )
    cart = {"destination": "mail", "wait": DEMO_CART_WAIT}
    journeys.put_journey(
        runtime, DEFAULT_WORKSPACE, "abandoned-cart", {"preset": "abandoned-cart", "settings": cart}
    )
    for preset in ("welcome", "back-in-stock", "loyalty-welcome"):
        journeys.put_journey(
            runtime,
            DEFAULT_WORKSPACE,
            preset,
            {"preset": preset, "settings": {"destination": "mail"}},
        )


def summarize(runtime: Any, truth: dict[str, Any], console: Console) -> None:
    """Print the demo's ground truth beside what the platform holds."""
    profiles = runtime.profiles.count_profiles(DEFAULT_WORKSPACE, "users")
    table = Table(title="OpenCDP demo: CDNOW (real) + omnichannel layer (generated)")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("CDNOW customers", f"{truth['customers']:,}")
    table.add_row("CDNOW orders", f"{truth['cdnow_orders']:,}")
    table.add_row("CDNOW revenue", f"${truth['cdnow_revenue']:,.2f}")
    table.add_row("events sent", f"{truth['messages']:,}")
    table.add_row("anonymous sessions that never log in", f"{truth['anonymous_sessions']:,}")
    table.add_row("store orders identified only by loyalty card", f"{truth['store_orders']:,}")
    table.add_row("profiles expected", f"{truth['profiles']:,}")
    verdict = "[green]match[/green]" if profiles == truth["profiles"] else "[red]differs[/red]"
    table.add_row("profiles resolved", f"{profiles:,} {verdict}")
    table.add_row("quarantined", str(runtime.quarantine.counts(DEFAULT_WORKSPACE) or "none"))
    retail = truth.get("retail", {})
    if retail:
        table.add_row("catalog products (generated fashion)", f"{retail['products']:,}")
        table.add_row("loyalty members (card holders)", f"{retail['members']:,}")
        table.add_row("till orders today (earning points)", f"{retail['till_orders']:,}")
        table.add_row("web shop views, adds and orders (60 days)", f"{retail['web_shop_events']:,}")
    model = truth.get("recs")
    if model:
        lift = (model.get("evaluation") or {}).get("lift")
        versus = "" if lift is None else f", {lift * 100:+.0f} % NDCG@10 over popularity"
        table.add_row("recommendation model", f"{model['version']} {model['kind']}{versus}")
    definitions = compute.store(runtime)
    for key in ("champions", "at_risk", "high_value", "churn_risk"):
        table.add_row(f"audience {key}", f"{definitions.count(DEFAULT_WORKSPACE, key):,}")
    console.print(table)


def run_demo(settings: Settings, *, customers: int | None, serve: bool, console: Console) -> None:
    """Load the demo into the configured database and (optionally) serve it."""
    from opencdp.runtime import Runtime

    if serve:
        check_port_free(settings.host, settings.port)  # before minutes of loading, not after
    mailbox = _mailbox(settings) if serve else None
    rt = Runtime(settings)
    try:
        console.print(f"Loading the demo into {rt.db.describe()} …")
        truth = load_demo(rt, customers=customers, console=console)
        summarize(rt, truth, console)
        url = f"http://{settings.host}:{settings.port}"
        if mailbox is not None:
            start_journeys(rt, mailbox.port)
            console.print(
                f"Journeys abandoned-cart (wait {DEMO_CART_WAIT}), welcome, back-in-stock and "
                f"loyalty-welcome are on; their e-mails land in {mailbox.directory} "
                f"(an SMTP server on 127.0.0.1:{mailbox.port})."
            )
        console.print(
            "\n[bold]Try it[/bold] (write key [green]demo-write-key[/green], "
            "access token [green]demo-token[/green], support token "
            "[green]demo-support-token[/green]):\n"
            f"  curl -u demo-token: {url}/v1/spaces/default/collections/users/profiles/user_id:cdnow-1/traits\n"
            f"  curl -u demo-token: '{url}/v1/spaces/default/collections/users/profiles/user_id:cdnow-1/events?limit=5'\n"
            f'  curl -u demo-write-key: {url}/v1/track -d \'{{"userId":"cdnow-1","event":"Product Viewed"}}\'\n'
            f"  {cli_command()} profile explain user_id:cdnow-1\n"
            f'  curl -u demo-write-key: {url}/v1/identify -d \'{{"userId":"new-1","traits":{{"email":"nia@example.com","first_name":"Nia"}}}}\'   # a welcome e-mail\n'
            f"  {cli_command()} journey show abandoned-cart\n"
            f"  open {url}/docs for the whole API\n",
            soft_wrap=True,
        )
    finally:
        rt.close()
    if serve:
        from opencdp.serve import serve as run_serve

        console.print(f"Serving on {url} (Ctrl-C to stop)")
        try:
            status = run_serve(settings, processes=1, workers=settings.workers, console=console)
        finally:
            if mailbox is not None:
                mailbox.__exit__(None, None, None)
        if status:
            raise ConfigurationError("the server stopped because a process kept failing")


def _mailbox(settings: Settings) -> Any:
    """The demo's mailbox under the data directory, started."""
    from opencdp.demo.mailbox import Mailbox

    return Mailbox(Path(settings.data_dir) / "demo-mail").__enter__()


def check_port_free(host: str, port: int) -> None:
    """Raise ConfigurationError when ``host:port`` cannot be listened on."""
    from opencdp.serve import bind

    advice = f"pick another port: make demo PORT={port + 1} (or opencdp demo --port {port + 1})"
    bind(host, port, advice).close()


def cli_command() -> str:
    """How to run ``opencdp`` from here, as the user started it (``.venv/bin/opencdp`` when
    the venv is not on PATH)."""
    program = Path(sys.argv[0])
    if program.name == "__main__.py":
        return f"{os.path.relpath(sys.executable)} -m opencdp"
    found = shutil.which(program.name)
    if found and Path(found).resolve() == program.resolve():
        return program.name
    return os.path.relpath(program) if program.is_absolute() else str(program)
