"""Schema evolution: v1 and v2 (fields added with defaults) read each other's data; breaking changes fail the
`spendstream schemas check` gate; the pydantic model mirrors the Avro contract."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import fastavro
from typer.testing import CliRunner

from schemas.catalog import SCHEMA_DIR, Catalog
from schemas.codec import UsageCodec
from schemas.compat import full_problems, model_problems, reader_problems
from spendstream.cli import app

V1 = json.loads((SCHEMA_DIR / "usage_event.avsc").read_text())
V2 = json.loads((SCHEMA_DIR / "evolution" / "usage_event_v2.avsc").read_text())
EVENT = {"event_id": "e1", "event_time": 1767225600000, "provider": "openai", "model": "gpt-4o",
         "input_tokens": 10, "team": "search"}


def _write(schema, record) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def _read(data, writer, reader):
    return fastavro.schemaless_reader(io.BytesIO(data), fastavro.parse_schema(writer), fastavro.parse_schema(reader))


def test_v1_data_reads_with_the_v2_reader_and_gets_the_new_defaults():
    ev = _read(_write(V1, EVENT), V1, V2)
    assert (ev["event_id"], ev["input_tokens"]) == ("e1", 10)
    assert (ev["region"], ev["audio_input_tokens"], ev["labels"]) == (None, 0, [])


def test_v2_data_reads_with_the_v1_reader_which_skips_the_new_fields():
    ev = _read(_write(V2, {**EVENT, "region": "eu-west-1", "audio_input_tokens": 7, "labels": ["a"]}), V2, V1)
    assert ev["event_id"] == "e1" and ev["team"] == "search" and "region" not in ev


def test_codec_decodes_v2_messages_into_v1_shape_when_the_catalog_knows_v2(tmp_path):
    cat = _catalog_with(tmp_path, V2)
    framed = b"\x00" + (3).to_bytes(4, "big") + _write(V2, {**EVENT, "region": "eu-west-1"})
    [ev] = UsageCodec(cat, event_id=1, batch_id=2).decode(framed)  # a v1 worker; the catalog knows v2
    assert ev["event_id"] == "e1" and "region" not in ev and ev["status"] == "success"


def test_v2_is_full_compatible_with_v1():
    assert full_problems(V1, V2) == []


def test_adding_a_field_without_default_breaks_backward_compatibility():
    bad = {**V2, "fields": V2["fields"] + [{"name": "region_code", "type": "string"}]}
    assert any("region_code" in p and "backward" in p for p in full_problems(V1, bad))


def test_removing_a_required_field_breaks_forward_compatibility():
    bad = {**V1, "fields": [f for f in V1["fields"] if f["name"] != "provider"]}
    assert any("provider" in p and "forward" in p for p in full_problems(V1, bad))


def test_narrowing_long_to_int_breaks_but_widening_int_to_long_reads():
    narrowed = {**V1, "fields": [{**f, "type": "int"} if f["name"] == "input_tokens" else f for f in V1["fields"]]}
    assert reader_problems(narrowed, V1) and not reader_problems(V1, narrowed)


def test_schemas_check_passes_on_the_shipped_catalog_and_the_v2_candidate():
    result = CliRunner().invoke(app, ["schemas", "check", "--candidate", str(SCHEMA_DIR / "evolution" / "usage_event_v2.avsc")])
    assert result.exit_code == 0, result.output


def test_schemas_check_fails_on_an_incompatible_candidate(tmp_path):
    bad = tmp_path / "bad.avsc"
    bad.write_text(json.dumps({**V1, "fields": V1["fields"] + [{"name": "region_code", "type": "string"}]}))
    result = CliRunner().invoke(app, ["schemas", "check", "--candidate", str(bad)])
    assert result.exit_code == 1 and "region_code" in result.output


def test_schemas_check_fails_when_the_catalog_holds_an_incompatible_version(tmp_path):
    broken = {**V1, "fields": [f for f in V1["fields"] if f["name"] != "model"]}
    _catalog_with(tmp_path, broken)
    result = CliRunner().invoke(app, ["schemas", "check", "--catalog", str(tmp_path / "catalog.json")])
    assert result.exit_code == 1 and "model" in result.output


def test_pydantic_model_mirrors_the_avro_schema_field_for_field():
    assert model_problems(Catalog.default()) == []


def _catalog_with(tmp_path: Path, v2: dict) -> Catalog:
    for name in ("usage_event.avsc", "usage_batch.avsc"):
        shutil.copy(SCHEMA_DIR / name, tmp_path / name)
    (tmp_path / "usage_event_v2.avsc").write_text(json.dumps(v2))
    raw = json.loads((SCHEMA_DIR / "catalog.json").read_text())
    raw["subjects"]["spend.usage.v1-value"].append({"version": 2, "id": 3, "file": "usage_event_v2.avsc", "kind": "event"})
    (tmp_path / "catalog.json").write_text(json.dumps(raw))
    return Catalog.from_file(tmp_path / "catalog.json")
