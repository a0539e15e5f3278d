"""Data-subject export on every backend: the document holds the person's rows of every table
the personal-data registry finds by profile (a new table fails this test until it is
exported), nothing of anyone else, as JSON, as a ZIP of CSVs, and from the CLI; every export
is audited."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import orjson
from fastapi.testclient import TestClient

from opencdp.runtime import Runtime
from opencdp.storage.personal_data import REGISTRY
from tests.conftest import TOKEN
from tests.contract.test_erasure import MAX, ZOE, person_scenario

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_the_export_holds_every_store_of_the_person_and_nobody_else(
    client: TestClient, rt: Runtime, tmp_path: Path
) -> None:
    zoe, _max = person_scenario(rt, tmp_path)
    consent = {"categoryPreferences": {"marketing": True}}
    assert client.put(f"/api/profiles/{zoe}/consent", json=consent, headers=AUTH).status_code == 202
    rt.processor.run_until_idle()
    # When Zoe's export is asked for by her e-mail
    answer = client.get(f"/api/profiles/email:{ZOE['email']}/export", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    doc = answer.json()
    # Then it covers every table the registry finds by profile, each with her rows
    stores = doc["stores"]
    assert set(stores) == {t for t, d in REGISTRY.items() if d.found_by_profile}
    assert {t for t, rows in stores.items() if not rows} == set()
    assert doc["profile_id"] == zoe and doc["merged_profile_ids"]
    assert {(i["type"], i["value"]) for i in doc["identifiers"]} >= {
        ("user_id", ZOE["user_id"]),
        ("email", ZOE["email"]),
        ("anonymous_id", ZOE["anonymous_id"]),
    }
    name = next(t for t in doc["traits"] if t["key"] == "name")
    assert name["value"] == ZOE["name"] and name["message_id"] and name["timestamp"]
    assert doc["consent"]["marketing"]["value"] is True
    assert doc["consent_history"][-1]["categoryPreferences"] == {"marketing": True}
    assert any(e["event"] == "Signed Up" for e in doc["timeline"])
    assert doc["deliveries"] and doc["journeys"] and doc["computed"]
    # and nothing of Max's
    text = answer.text.lower()
    assert not [v for v in MAX.values() if v.lower() in text]
    # The export is in the audit log with her profile id
    [entry] = rt.audit.query("default", action="profile.export")
    assert entry.profile_id == zoe


def test_the_zip_holds_the_document_and_a_csv_per_store(
    client: TestClient, rt: Runtime, tmp_path: Path
) -> None:
    person_scenario(rt, tmp_path)
    answer = client.get(f"/api/profiles/user_id:{ZOE['user_id']}/export?format=zip", headers=AUTH)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    names = set(archive.namelist())
    assert "profile.json" in names
    assert {f"{t}.csv" for t, d in REGISTRY.items() if d.found_by_profile} <= names
    assert ZOE["email"] in archive.read("identifiers.csv").decode()
    assert orjson.loads(archive.read("profile.json"))["format"] == "opencdp.profile-export/1"


def test_an_unknown_person_is_404_and_a_read_token_may_not_export(
    client: TestClient, rt: Runtime
) -> None:
    answer = client.get("/api/profiles/email:nobody@example.org/export", headers=AUTH)
    assert answer.status_code == 404
    _tok, reader = rt.admin.add_token("default", "reader", rt.now_us(), "read")
    answer = client.get(
        "/api/profiles/email:nobody@example.org/export",
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert answer.status_code == 403


def test_the_cli_exports_json_and_zip(client: TestClient, rt: Runtime, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from opencdp.cli.main import app

    person_scenario(rt, tmp_path)
    where = ["--data-dir", str(rt.settings.data_dir)]
    if rt.settings.database_url:
        where += ["--database-url", rt.settings.database_url]
    out, archive = tmp_path / "zoe.json", tmp_path / "zoe.zip"
    result = CliRunner().invoke(
        app,
        [
            "profile",
            "export",
            f"user_id:{ZOE['user_id']}",
            "-o",
            str(out),
            "--zip",
            str(archive),
            *where,
        ],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(out.read_bytes())["identifiers"]
    assert "profile.json" in zipfile.ZipFile(archive).namelist()
    assert rt.audit.query("default", action="profile.export")[0].channel == "cli"
