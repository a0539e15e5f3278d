"""Data-subject export: one document holding everything the platform keeps about a person.

It follows the personal-data registry (``storage/personal_data.py``): every table that finds
rows by profile is exported under ``stores`` as it is stored (JSON columns decoded), so a new
table with personal data is exported once it is declared. Friendlier sections come first:
identifiers, traits with provenance, consent with its history, the timeline, computed traits
and audience memberships, deliveries made, journeys. ``docs/export.md`` describes the format.
"""

from __future__ import annotations

import contextlib
import csv
import io
import zipfile
from typing import Any

import orjson

from opencdp.runtime import Runtime
from opencdp.services.profile_lookup import locate_profile
from opencdp.storage.export_reads import rows_of_person
from opencdp.timeutil import isoformat_us

FORMAT = "opencdp.profile-export/1"
#: columns stored as JSON text, decoded in the export
_JSON_COLUMNS = {
    "payload",
    "resolution",
    "value",
    "detail",
    "violations",
    "context",
    "events",
    "last_request",
    "last_response",
}


def export_profile(rt: Runtime, workspace_id: str, ref: str) -> dict[str, Any]:
    """The export of the person ``ref`` names (a profile id or ``type:value``); raises
    NotFound."""
    profile = locate_profile(rt, workspace_id, ref)
    stores = {
        table: [_decoded(row) for row in rows]
        for table, rows in rows_of_person(rt.db, workspace_id, profile.id).items()
    }
    events = sorted(stores.get("events", []), key=lambda e: (e["timestamp_us"], e["message_id"]))
    traits = stores.get("traits", [])
    return {
        "format": FORMAT,
        "exported_at": isoformat_us(rt.now_us()),
        "workspace_id": workspace_id,
        "profile_id": profile.id,
        "merged_profile_ids": sorted(
            p["id"] for p in stores.get("profiles", []) if p["id"] != profile.id
        ),
        "identifiers": [
            {
                "type": i["id_type"],
                "value": i["id_value"],
                "rule": i["rule"],
                "source_id": i["source_id"],
                "message_id": i["message_id"],
                "first_seen": isoformat_us(i["created_us"]),
                "last_seen": isoformat_us(i["last_seen_us"]),
            }
            for i in stores.get("identifiers", [])
        ],
        "traits": [
            {
                "key": t["key"],
                "value": t["value"],
                "source_id": t["source_id"],
                "message_id": t["message_id"],
                "timestamp": isoformat_us(t["event_us"]),
            }
            for t in sorted(traits, key=lambda t: t["key"])
            if not t["key"].startswith("consent.")
        ],
        "consent": {
            t["key"].removeprefix("consent."): {
                "value": t["value"],
                "timestamp": isoformat_us(t["event_us"]),
                "source_id": t["source_id"],
                "message_id": t["message_id"],
            }
            for t in traits
            if t["key"].startswith("consent.")
        },
        "consent_history": [
            {
                "timestamp": isoformat_us(e["timestamp_us"]),
                "message_id": e["message_id"],
                "source_id": e["source_id"],
                "categoryPreferences": _preferences(e["payload"]),
            }
            for e in events
            if _preferences(e["payload"]) is not None
        ],
        "timeline": [
            {
                "message_id": e["message_id"],
                "type": e["type"],
                "event": e["event"],
                "timestamp": isoformat_us(e["timestamp_us"]),
                "received_at": isoformat_us(e["received_us"]),
                "source_id": e["source_id"],
                "message": e["payload"],
            }
            for e in events
        ],
        "computed": [
            {"key": c["key"], "value": c["value"], "computed_at": isoformat_us(c["computed_us"])}
            for c in sorted(stores.get("computed_values", []), key=lambda c: c["key"])
        ],
        "deliveries": [
            {
                "destination": d["destination_id"],
                "subscription": d["subscription"],
                "status": d["status"],
                "attempts": d["attempts"],
                "message_id": d["message_id"],
                "created_at": isoformat_us(d["created_us"]),
                "delivered_at": isoformat_us(d["delivered_us"]) if d["delivered_us"] else None,
                "payload": d["payload"],
            }
            for d in sorted(stores.get("deliveries", []), key=lambda d: d["seq"])
        ],
        "journeys": [
            {
                "journey": j["journey_key"],
                "status": j["status"],
                "step": j["step"],
                "entered_at": isoformat_us(j["entered_us"]),
                "ended_at": isoformat_us(j["ended_us"]) if j["ended_us"] else None,
                "exit_reason": j["exit_reason"],
            }
            for j in stores.get("journey_instances", [])
        ],
        "stores": stores,
    }


def export_zip(document: dict[str, Any]) -> bytes:
    """``profile.json`` (the document) and one CSV per store (its rows as stored; JSON
    values as JSON text)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "profile.json", orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
        )
        for table, rows in sorted(document["stores"].items()):
            text = io.StringIO()
            columns = sorted({c for r in rows for c in r}) if rows else ["(no rows)"]
            writer = csv.DictWriter(text, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(v) for k, v in row.items()})
            archive.writestr(f"{table}.csv", text.getvalue())
    return buffer.getvalue()


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if key in _JSON_COLUMNS and isinstance(value, str):
            with contextlib.suppress(orjson.JSONDecodeError):  # text that is no JSON stays text
                value = orjson.loads(value)
        out[key] = value
    return out


def _preferences(payload: Any) -> dict[str, Any] | None:
    context = payload.get("context") if isinstance(payload, dict) else None
    consent = context.get("consent") if isinstance(context, dict) else None
    found = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    return found if isinstance(found, dict) else None


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value
