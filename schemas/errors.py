"""The root of every error spendstream raises, and the contract's own errors.

It lives here, at the bottom of the import graph, because every other package imports `schemas`.
"""

__all__ = [
    "SpendstreamError", "DecodeError", "EncodeError", "SchemaNotFound", "SchemaRegistryUnavailable", "IncompatibleSchema",
]


class SpendstreamError(Exception):
    """Root of all spendstream errors."""


class DecodeError(SpendstreamError):
    """The bytes are not a valid usage event in Confluent wire format.

    `reason` is a short stable code the dead-letter queue records (bad_magic, unknown_schema_id, corrupt_avro, ...).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SchemaNotFound(SpendstreamError):
    """No schema is registered under that subject / version / id."""


class EncodeError(SpendstreamError):
    """An event dict that does not fit the Avro schema (wrong type, missing required field)."""


class SchemaRegistryUnavailable(SpendstreamError):
    """The Schema Registry did not answer. Not a DecodeError on purpose: the message is fine, so the worker must
    retry it rather than dead-letter it."""


class IncompatibleSchema(SpendstreamError):
    """A schema change breaks readers or writers of an earlier version; `problems` lists why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
