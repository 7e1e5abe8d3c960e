"""A registry-backed catalog: the same interface as `schemas.catalog.Catalog`, with ids from a Confluent Schema
Registry (or Karapace) through confluent-kafka's SchemaRegistryClient.

Entry points build the client (`build_catalog(url)`) and pass the catalog to `UsageCodec`; nothing here reads
settings. The event lives under the topic's value subject (TopicNameStrategy), the batch under its own record
subject with a schema reference to the event. `mock://` URLs give confluent-kafka's in-memory mock registry.

Needs `confluent-kafka[schemaregistry]` (authlib, cachetools, httpx) at run time; the offline catalog does not.
"""

from __future__ import annotations

import json
from typing import Any

from schemas.catalog import (
    BATCH_SUBJECT, EVENT_FULLNAME, USAGE_SUBJECT, Catalog, SchemaEntry, load_avsc, parse_writer_schema,
)
from schemas.errors import IncompatibleSchema, SchemaNotFound, SchemaRegistryUnavailable

__all__ = ["RegistryCatalog", "build_catalog"]

_FILES = {"event": "usage_event.avsc", "batch": "usage_batch.avsc"}


def _registry_api() -> Any:
    try:
        from confluent_kafka import schema_registry
    except ImportError as exc:  # the [schemaregistry] extra is missing
        raise SchemaRegistryUnavailable(
            f"confluent-kafka's schema registry client cannot be imported ({exc}); install confluent-kafka[schemaregistry]"
        ) from exc
    return schema_registry


def _translate(exc: Exception, what: str) -> Exception:
    """Map a registry client error to ours: 404 -> SchemaNotFound, 409 -> IncompatibleSchema, else unavailable."""
    status = getattr(exc, "http_status_code", None)
    if status == 404:
        return SchemaNotFound(f"{what}: {exc}")
    if status in (409, 422):
        return IncompatibleSchema([f"{what}: {exc}"])
    return SchemaRegistryUnavailable(f"{what}: {type(exc).__name__}: {exc}")


class RegistryCatalog:
    """Usage schemas registered in (or looked up from) a Schema Registry.

    `latest(subject, kind)` registers our shipped schema when `auto_register` (the producer side), or only looks
    it up (consumers, locked-down registries). `writer_schema(id)` fetches any id met on the wire, with its
    references, so data written by a newer or older compatible UsageEvent decodes. Results are cached.
    Raises SchemaNotFound, IncompatibleSchema or SchemaRegistryUnavailable.
    """

    def __init__(self, client: Any, auto_register: bool = True) -> None:
        self._api = _registry_api()
        self.client = client
        self.auto_register = auto_register
        self._latest: dict[tuple[str, str], SchemaEntry] = {}

    def latest(self, subject: str, kind: str) -> SchemaEntry:
        if kind == "batch" and subject == USAGE_SUBJECT:
            subject = BATCH_SUBJECT
        key = (subject, kind)
        if key not in self._latest:
            self._latest[key] = self._register(subject, kind)
        return self._latest[key]

    def _register(self, subject: str, kind: str) -> SchemaEntry:
        refs = []
        if kind == "batch":
            event = self.latest(USAGE_SUBJECT, "event")
            refs = [self._api.SchemaReference(EVENT_FULLNAME, event.subject, event.version)]
        schema = self._api.Schema(json.dumps(load_avsc(_FILES[kind])), "AVRO", refs)
        try:
            if self.auto_register:
                self.client.register_schema(subject, schema)
            registered = self.client.lookup_schema(subject, schema)
        except Exception as exc:
            raise _translate(exc, f"register {kind} schema under {subject}") from exc
        return SchemaEntry(subject, registered.version, registered.schema_id, _FILES[kind], kind)

    def writer_schema(self, schema_id: int) -> tuple[dict, bool]:
        """(parsed writer schema, is_batch) for an id read from a message header."""
        try:
            schema = self.client.get_schema(schema_id)
            refs = [
                json.loads(self.client.get_version(r.subject, r.version).schema.schema_str)
                for r in (schema.references or [])
            ]
        except Exception as exc:
            raise _translate(exc, f"schema id {schema_id}") from exc
        if schema.schema_type not in (None, "AVRO"):
            raise SchemaNotFound(f"schema id {schema_id} is {schema.schema_type}, not Avro")
        return parse_writer_schema(json.loads(schema.schema_str), refs)


def build_catalog(registry_url: str | None, **client_conf: Any) -> Catalog | RegistryCatalog:
    """The offline catalog when no registry URL is configured, else a registry-backed one (mock:// works)."""
    if not registry_url:
        return Catalog.default()
    api = _registry_api()
    return RegistryCatalog(api.SchemaRegistryClient.new_client({"url": registry_url, **client_conf}))

