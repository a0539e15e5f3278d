"""The registry of personal data's pure parts: declarations and the SQL they build (compiled,
not run)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from opencdp.storage.personal_data import (
    REGISTRY,
    Declaration,
    delete_rows,
    found_by_profile,
    no_personal_data,
    not_linked,
    profile_family,
    select_rows,
)


def sql(statement: Any, dialect: Any = None) -> str:
    compiled = statement.compile(
        dialect=dialect or sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    return " ".join(str(compiled).split())


def test_the_family_is_the_profile_and_every_profile_merged_into_it() -> None:
    assert sql(profile_family("ws1", "use_1")) == (
        "SELECT profiles.id FROM profiles WHERE profiles.workspace_id = 'ws1' "
        "AND (profiles.id = 'use_1' OR profiles.merged_into = 'use_1')"
    )


def test_rows_are_selected_in_the_workspace_by_every_profile_column() -> None:
    text = sql(select_rows("links", "ws1", "use_1"))
    assert text.startswith("SELECT links.workspace_id, links.user_profile_id")
    assert "WHERE links.workspace_id = 'ws1' AND (links.user_profile_id IN (SELECT" in text
    assert "OR links.account_profile_id IN (SELECT profiles.id FROM profiles" in text
    assert text.count("profiles.merged_into = 'use_1'") == 2


def test_delete_removes_exactly_what_select_selects() -> None:
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        selected = sql(select_rows("inbox", "ws1", "use_1"), dialect)
        deleted = sql(delete_rows("inbox", "ws1", "use_1"), dialect)
        assert deleted.startswith("DELETE FROM inbox WHERE ")
        assert deleted.split(" WHERE ", 1)[1] == selected.split(" WHERE ", 1)[1]


def test_tables_not_found_by_profile_refuse_and_unknown_tables_raise() -> None:
    with pytest.raises(ValueError, match="import_runs"):
        select_rows("import_runs", "ws1", "use_1")
    with pytest.raises(ValueError, match="workspaces"):
        delete_rows("workspaces", "ws1", "use_1")
    with pytest.raises(KeyError):
        select_rows("no_such_table", "ws1", "use_1")


def test_declarations_say_what_they_are() -> None:
    assert not no_personal_data("t", "why").holds_personal_data
    linked = found_by_profile("t", ("c",), ("profile_id",), "what")
    assert linked.holds_personal_data and linked.found_by_profile
    gap = not_linked("t", ("report",), "how instead")
    assert gap.holds_personal_data and not gap.found_by_profile
    assert REGISTRY["events"].profile_columns == ("profile_id",)
    assert all(d.note for d in REGISTRY.values())


@pytest.mark.parametrize(
    "make",
    [
        lambda: Declaration("t", (), ("profile_id",), "profile ids but nothing personal"),
        lambda: Declaration("t", (), (), " "),
        lambda: found_by_profile("t", ("c",), (), "no profile column"),
        lambda: not_linked("t", (), "no column"),
    ],
)
def test_inconsistent_declarations_are_refused(make: Any) -> None:
    with pytest.raises(ValueError):
        make()


def test_declarations_are_frozen() -> None:
    with pytest.raises(AttributeError):
        REGISTRY["events"].columns = ()  # type: ignore[misc]
