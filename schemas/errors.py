"""The root of every error spendstream raises, and the contract's own errors.

It lives here, at the bottom of the import graph, because every other package imports `schemas`.
"""

__all__ = [
    "SpendstreamError", "ReasonedError", "DecodeError", "EncodeError", "SchemaNotFound", "SchemaRegistryUnavailable", "IncompatibleSchema",
]


class SpendstreamError(Exception):
    """Root of all spendstream errors."""


class ReasonedError(SpendstreamError):
    """An error with a short stable `reason` code (what the dead-letter queue records) and a human `detail`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DecodeError(ReasonedError):
    """The bytes are not a valid usage event in Confluent wire format (bad_magic, unknown_schema_id, corrupt_avro, ...)."""


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
