"""The codec backed by a Schema Registry, through confluent-kafka's own mock:// client."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("authlib", reason="confluent-kafka[schemaregistry] extra not installed")

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402

from schemas.catalog import BATCH_SUBJECT, SCHEMA_DIR, USAGE_SUBJECT  # noqa: E402
from schemas.codec import UsageCodec  # noqa: E402
from schemas.errors import DecodeError  # noqa: E402
from schemas.registry import RegistryCatalog, build_catalog  # noqa: E402

EVENT = {"event_id": "e1", "event_time": 1767225600000, "provider": "openai", "model": "gpt-4o", "team": "search"}


@pytest.fixture()
def client():
    return SchemaRegistryClient.new_client({"url": "mock://spendstream-test"})


def test_producer_registers_event_and_batch_under_their_subjects(client):
    codec = UsageCodec(RegistryCatalog(client))
    assert client.get_latest_version(USAGE_SUBJECT).schema_id == codec.event_schema_id
    batch = client.get_latest_version(BATCH_SUBJECT)
    assert batch.schema_id == codec.batch_schema_id
    assert [r.name for r in batch.schema.references] == ["io.spendstream.usage.v1.UsageEvent"]


def test_consumer_decodes_ids_it_only_learns_from_the_registry(client):
    producer = UsageCodec(RegistryCatalog(client))
    consumer = UsageCodec(RegistryCatalog(client, auto_register=False), event_id=900, batch_id=901)
    assert consumer.decode(producer.encode(EVENT))[0]["event_id"] == "e1"
    assert [e["event_id"] for e in consumer.decode(producer.encode_batch([EVENT, {**EVENT, "event_id": "e2"}]))] == ["e1", "e2"]


def test_newer_compatible_writer_schema_from_the_registry_is_read_in_our_shape(client):
    codec = UsageCodec(RegistryCatalog(client))
    v2 = json.loads((SCHEMA_DIR / "evolution" / "usage_event_v2.avsc").read_text())
    v2_id = client.register_schema(USAGE_SUBJECT, Schema(json.dumps(v2), "AVRO"))
    import io

    import fastavro
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(v2), {**EVENT, "region": "eu"})
    [ev] = codec.decode(b"\x00" + v2_id.to_bytes(4, "big") + buf.getvalue())
    assert ev["event_id"] == "e1" and "region" not in ev


def test_id_unknown_to_the_registry_is_a_dlq_decode_error(client):
    codec = UsageCodec(RegistryCatalog(client))
    with pytest.raises(DecodeError) as info:
        codec.decode(b"\x00\x00\x00\x30\x39" + b"\x02")
    assert info.value.reason == "unknown_schema_id"


def test_without_a_registry_url_the_offline_catalog_is_used():
    assert UsageCodec(build_catalog(None)).event_schema_id == 1
