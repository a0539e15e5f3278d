"""``opencdp loyalty …``: the programme (``programme apply FILE``, ``programme show``), members
(``member enrol``, ``member show``, ``member adjust``, ``member card``, ``member add-card``,
``member revoke-card``, ``member rotate-token``) and the points ledger
(``ledger ID``). Thin: every command calls :mod:`opencdp.services.loyalty`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from opencdp.cli.common import (
    DataDir,
    DbUrl,
    Workspace,
    audited,
    console,
    err,
    print_json,
    read_document,
    runtime_for,
    settings_from,
)
from opencdp.services.audit import cli_actor

loyalty_app = typer.Typer(help="The loyalty programme, its members and their points.")
programme_app = typer.Typer(help="The workspace's loyalty programme.")
member_app = typer.Typer(
    help="Loyalty members: enrol, show, adjust points, print the card, replace cards and tokens."
)
loyalty_app.add_typer(programme_app, name="programme")
loyalty_app.add_typer(member_app, name="member")

MemberRef = Annotated[
    str,
    typer.Argument(
        help="A member id, a token or card number, or the member's profile "
        "(email:ann@example.com, user_id:u1, a profile id)."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@programme_app.command("apply")
def programme_apply(
    file: Annotated[Path, typer.Argument(help="The programme as YAML or JSON (docs/loyalty.md).")],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Check the programme and make it the workspace's (points, multipliers, bonuses, tiers,
    qualification period, expiry)."""
    from opencdp.services.loyalty import apply_programme

    document = read_document(file)
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "loyalty.programme.put", "programme"),
    ):
        applied = apply_programme(rt, workspace, document)
    programme = applied["programme"]
    tiers = ", ".join(f"{t['name']} ({t['threshold']})" for t in programme["tiers"]) or "none"
    console.print(
        f"applied [bold]{programme['name']}[/bold] (version {applied['version']}): "
        f"{programme['points_per_unit']} points per {programme['currency'] or 'currency unit'}, "
        f"tiers {tiers}, expiry {programme['expiry'] or 'never'}"
    )


@programme_app.command("show")
def programme_show(
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Print the workspace's programme as JSON."""
    from opencdp.services.loyalty import get_programme

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        print_json(get_programme(rt, workspace))


@member_app.command("enrol")
def member_enrol(
    email: Annotated[str | None, typer.Option(help="The member's e-mail.")] = None,
    user_id: Annotated[str | None, typer.Option("--user-id", help="The shop's user id.")] = None,
    card: Annotated[
        str | None, typer.Option("--card", help="A physical card number handed out.")
    ] = None,
    first_name: Annotated[str | None, typer.Option("--first-name")] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Enrolled in this store (channel store).")
    ] = None,
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Enrol a person (as the till or the web shop would); prints the member and its token."""
    from opencdp.services.loyalty import enrol

    body: dict[str, Any] = {"channel": "store" if store else "online"}
    for key, value in (
        ("email", email),
        ("user_id", user_id),
        ("card_number", card),
        ("store_id", store),
    ):
        if value is not None:
            body[key] = value
    if first_name:
        body["traits"] = {"first_name": first_name}
    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "loyalty.member.enrol") as note,
    ):
        created, member = enrol(rt, workspace, body, actor=cli_actor())
        note.target = member["id"]
        rt.processor.run_until_idle()  # bind it now, as a running worker would
    if as_json:
        print_json(member)
        return
    verb = "enrolled" if created else "already a member:"
    console.print(f"{verb} [bold]{member['id']}[/bold], token {member['token']}")


@member_app.command("show")
def member_show(
    ref: MemberRef,
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A member: balance, tier, points expiring within 30 days, tokens and cards."""
    from opencdp.services.loyalty import member_view

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        view = member_view(rt, workspace, ref)
    if as_json:
        print_json(view)
        return
    table = Table(show_header=False, box=None)
    for key in ("id", "profile_id", "tier", "balance", "points_expiring_30d", "token"):
        table.add_row(key, str(view[key]))
    table.add_row("cards", ", ".join(view["cards"]) or "-")
    table.add_row("enrolled", f"{view['enrolled_at']} ({view['channel']})")
    console.print(table)


@member_app.command("adjust")
def member_adjust(
    ref: MemberRef,
    points: Annotated[
        int, typer.Option("--points", help="Points to add; negative to take (never below 0).")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the ledger.")],
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Makes the adjustment happen once (e.g. a ticket id)."),
    ] = None,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Add or take points by hand, with the reason."""
    from opencdp.services.loyalty import adjust, member_view

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        with audited(rt, workspace, "loyalty.adjust") as note:
            created, entry = adjust(
                rt, workspace, ref, points, reason=reason, reference=reference, actor=cli_actor()
            )
            note.target = entry["member_id"]
            rt.processor.run_until_idle()
        balance = member_view(rt, workspace, entry["member_id"])["balance"]
    if not created:
        err.print(f"reference {reference!r} was adjusted before: nothing changed")
    console.print(f"{entry['points']:+d} points ({entry['reason']}); balance {balance}")


@member_app.command("card")
def member_card(
    ref: MemberRef,
    out: Annotated[Path, typer.Option("--out", help="Write the card here: FILE.svg or FILE.png.")],
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Write the member card (Code 128 barcode and QR code of the token)."""
    from opencdp.services.loyalty import card

    extension = out.suffix.lower().lstrip(".")
    if extension not in ("svg", "png"):
        err.print("[red]error:[/red] --out must end in .svg or .png")
        raise typer.Exit(2)
    with runtime_for(settings_from(data_dir, database_url)) as rt:
        content, _profile = card(rt, workspace, ref, extension)
    out.write_bytes(content)
    console.print(f"wrote {out}")


CardNumber = Annotated[str, typer.Argument(help="The physical card's number.")]


@member_app.command("add-card")
def member_add_card(
    ref: MemberRef,
    card_number: CardNumber,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Give the member a physical card (a replacement for a lost one, or a second card)."""
    from opencdp.services.loyalty import add_card

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "loyalty.card.add") as note,
    ):
        added, view = add_card(rt, workspace, ref, card_number, actor=cli_actor())
        note.target = view["id"]
        rt.processor.run_until_idle()  # the card becomes an identifier now, as a worker would
    verb = "added" if added else "already the member's:"
    console.print(f"{verb} card {card_number.strip()}; cards {', '.join(view['cards'])}")


@member_app.command("revoke-card")
def member_revoke_card(
    ref: MemberRef,
    card_number: CardNumber,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Revoke a lost or stolen card: the till no longer finds it; points stay."""
    from opencdp.services.loyalty import revoke_card

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "loyalty.card.revoke") as note,
    ):
        view = revoke_card(rt, workspace, ref, card_number)
        note.target = view["id"]
    console.print(
        f"revoked card {card_number} of {view['id']}; cards {', '.join(view['cards']) or '-'}"
    )


@member_app.command("rotate-token")
def member_rotate_token(
    ref: MemberRef,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """Revoke the member's digital token (a lost phone, a leaked image) and issue a new one."""
    from opencdp.services.loyalty import rotate_token

    with (
        runtime_for(settings_from(data_dir, database_url)) as rt,
        audited(rt, workspace, "loyalty.token.rotate") as note,
    ):
        view = rotate_token(rt, workspace, ref)
        note.target = view["id"]
    console.print(f"new token for {view['id']}: {view['token']}")


@loyalty_app.command("ledger")
def ledger(
    ref: MemberRef,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Entries to show.")] = 50,
    as_json: AsJson = False,
    workspace: Workspace = "default",
    data_dir: DataDir = None,
    database_url: DbUrl = None,
) -> None:
    """A member's points ledger, newest first."""
    from opencdp.services.loyalty import ledger_of

    with runtime_for(settings_from(data_dir, database_url)) as rt:
        page = ledger_of(rt, workspace, ref, limit)
    if as_json:
        print_json(page)
        return
    table = Table(title=f"{page['member_id']}: balance {page['balance']}")
    for column in ("at", "kind", "points", "order", "reason", "expires"):
        table.add_column(column, justify="right" if column == "points" else "left")
    for e in page["data"]:
        table.add_row(
            e["at"],
            e["kind"],
            f"{e['points']:+d}",
            e["order_id"] or "",
            e["reason"] or "",
            e["expires_at"] or "",
        )
    console.print(table)
