"""The usage event's field list is written once, in the Avro schema; every other list of its fields is checked
against it here: the pydantic model, the SDK's `record()` keywords, the priced_events columns (row builder and
ClickHouse DDL) and the counter rebuild's SQL."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

from integrations.publisher import Publisher
from schemas.models import UsageEvent
from sinks.clickhouse.priced_rows import PRICED_COLUMNS
from sinks.redis.rebuild import PRICED_SQL, PricedRow

ROOT = Path(__file__).resolve().parents[2]
AVRO_FIELDS = [f["name"] for f in json.loads((ROOT / "schemas" / "usage_event.avsc").read_text())["fields"]]
# columns of priced_events that are not event fields: the owner verdict, the price, and where the record came from
DERIVED = {"ingested_at", "fully_tagged", "cost_input", "cost_output", "cost_cached_input", "cost_cache_write",
           "cost_reasoning", "cost_request", "cost_gpu", "cost_egress", "list_cost", "contracted_cost", "cost",
           "price_version", "price_rule", "unpriced", "late", "kafka_topic", "kafka_partition", "kafka_offset"}


def _ddl_columns(table: str) -> list[str]:
    sql = (ROOT / "sinks" / "clickhouse" / "migrations" / "0001_priced_events.sql").read_text()
    body = re.search(rf"CREATE TABLE IF NOT EXISTS \{{db\}}\.{table}\s*\((.*?)\)\s*ENGINE", sql, re.S).group(1)
    names = []
    for line in body.splitlines():
        line = line.strip()
        if line and not line.startswith(("--", "INDEX", "PROJECTION", "CONSTRAINT")):
            names.append(line.split()[0].strip("`"))
    return names


def test_the_pydantic_usage_event_has_exactly_the_avro_fields_in_order():
    assert list(UsageEvent.model_fields) == AVRO_FIELDS


def test_publisher_record_takes_every_avro_field_as_a_keyword():
    params = [p for p in inspect.signature(Publisher.record).parameters if p != "self"]
    assert sorted(params) == sorted(AVRO_FIELDS)


def test_priced_columns_are_the_avro_fields_plus_the_derived_ones():
    assert set(PRICED_COLUMNS) == set(AVRO_FIELDS) | DERIVED
    assert len(PRICED_COLUMNS) == len(set(PRICED_COLUMNS))


def test_the_priced_events_ddl_has_the_columns_the_writer_inserts():
    assert set(_ddl_columns("priced_events")) >= set(PRICED_COLUMNS)


def test_the_rebuild_sql_selects_one_column_per_rebuild_row_field():
    selected = PRICED_SQL.split("SELECT", 1)[1].split("FROM", 1)[0]
    depth, cols, cur = 0, [], ""
    for ch in selected:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            cols.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cols.append(cur.strip())
    assert len(cols) == len(PricedRow._fields)
    for col, field in zip(cols, PricedRow._fields):
        name = re.sub(r"^\w+\((\w+)\)$", r"\1", col)
        assert name in PRICED_COLUMNS, (col, field)
