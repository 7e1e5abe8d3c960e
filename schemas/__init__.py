"""The usage-event contract: Avro schemas, the Confluent-framed codec, the offline catalog, pydantic models."""
