"""Lenient parsing of imported events (schemas.import_lines) and `spendstream publish --file --dry-run`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from schemas.import_lines import EventFieldError, field_specs, normalize_event, parse_timestamp_ms
from schemas.models import UsageEvent

BASE = {"event_id": "imp-1", "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10}
T0 = 1793700900000          # 2026-11-03T10:15:00Z in epoch ms


def test_optional_fields_and_defaults_come_from_the_avro_schema():
    specs = field_specs()
    required = sorted(name for name, spec in specs.items() if not spec.optional)
    assert required == ["event_id", "event_time", "model", "provider"]
    assert (specs["source"].default, specs["input_tokens"].default, specs["attributes"].default) == ("sdk", 0, {})
    assert specs["team"].optional and specs["team"].default is None
    assert [n for n, s in specs.items() if s.timestamp_ms] == ["event_time"]


@pytest.mark.parametrize("value, expected", [
    ("2026-11-03T10:15:00Z", T0),
    ("2026-11-03T11:15:00+01:00", T0),
    ("2026-11-03T05:15:00-05:00", T0),
    ("2026-11-03T10:15:00.123Z", T0 + 123),
    ("2026-11-03T10:15:00.123456789Z", T0 + 123),          # nanoseconds, truncated to the millisecond
    ("2026-11-03T11:15:00.5+01:00", T0 + 500),
    ("2026-11-03t10:15:00z", T0),                           # RFC 3339 allows lower case
    ("2026-11-03 10:15:00Z", T0),                           # and a space for the T
    (T0, T0),                                               # epoch ms
    (float(T0), T0),
    (str(T0), T0),
])
def test_event_time_accepts_epoch_ms_and_rfc3339_with_an_offset(value, expected):
    assert parse_timestamp_ms(value) == expected
    assert normalize_event({**BASE, "event_time": value})["event_time"] == expected


@pytest.mark.parametrize("value", ["2026-11-03T10:15:00", "2026-11-03T10:15:00.250", "2026-11-03"])
def test_naive_timestamp_is_rejected_with_field_and_reason(value):
    with pytest.raises(EventFieldError) as err:
        normalize_event({**BASE, "event_time": value})
    assert err.value.field == "event_time"
    assert "no UTC offset" in err.value.reason and value in err.value.reason


@pytest.mark.parametrize("value, reason", [
    ("yesterday", "not an RFC 3339"), (1.5, "whole number"), (True, "expected epoch"), ([1], "expected epoch")])
def test_unusable_event_time_is_rejected(value, reason):
    with pytest.raises(EventFieldError, match=reason) as err:
        normalize_event({**BASE, "event_time": value})
    assert err.value.field == "event_time"


def test_null_optional_fields_take_their_schema_default():
    raw = {**BASE, "event_time": T0, "input_tokens": None, "request_count": None, "gpu_seconds": None,
           "status": None, "source": None, "team": None, "attributes": None, "service_tier": None}
    out = normalize_event(raw)
    assert (out["input_tokens"], out["request_count"], out["gpu_seconds"]) == (0, 1, 0.0)
    assert (out["status"], out["source"], out["team"], out["attributes"], out["service_tier"]) == ("success", "sdk", None, {}, None)
    event = UsageEvent.model_validate(out)
    assert event.request_count == 1 and event.attributes == {}
    assert raw["input_tokens"] is None                      # the input is not modified


def test_defaults_are_copies():
    a = normalize_event({**BASE, "event_time": T0, "attributes": None})
    a["attributes"]["x"] = "1"
    assert normalize_event({**BASE, "event_time": T0, "attributes": None})["attributes"] == {}


@pytest.mark.parametrize("field", ["event_id", "provider", "model", "event_time"])
def test_null_or_missing_required_field_is_an_error_naming_it(field):
    with pytest.raises(EventFieldError) as err:
        normalize_event({**BASE, "event_time": T0, field: None})
    assert (err.value.field, err.value.reason) == (field, "required, but null")
    assert str(err.value) == f"{field}: required, but null"
    missing = {k: v for k, v in {**BASE, "event_time": T0}.items() if k != field}
    with pytest.raises(EventFieldError, match=f"^{field}: required, but missing$"):
        normalize_event(missing)


def test_not_an_object_is_rejected():
    with pytest.raises(EventFieldError, match="expected a JSON object") as err:
        normalize_event([1, 2])
    assert err.value.field is None


def test_publish_dry_run_accepts_real_exports_and_names_line_field_and_reason(tmp_path):
    from spendstream.cli import app

    lines = [
        {**BASE, "event_id": "a", "event_time": "2026-11-03T10:15:00Z"},
        {**BASE, "event_id": "b", "event_time": "2026-11-03T11:15:00.250+01:00", "team": None, "output_tokens": None,
         "attributes": None, "source": None},
        {**BASE, "event_id": "c", "event_time": T0},
        {**BASE, "event_id": "d", "event_time": "2026-11-03T10:15:00"},          # naive: rejected
        {**BASE, "event_id": None, "event_time": T0},                            # required null: rejected
    ]
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = CliRunner().invoke(app, ["publish", "--file", str(path), "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "3 valid, 2 rejected" in result.output
    rows = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    assert any(r.startswith("4 event_time: timestamp '2026-11-03T10:15:00' has no UTC offset") for r in rows), result.output
    assert any(r.startswith("5 event_id: required, but null") for r in rows), result.output

    path.write_text("\n".join(json.dumps(x) for x in lines[:3]) + "\n")
    ok = CliRunner().invoke(app, ["publish", "--file", str(path), "--dry-run"], env={"COLUMNS": "200"})
    assert ok.exit_code == 0 and "3 valid, 0 rejected" in ok.output
