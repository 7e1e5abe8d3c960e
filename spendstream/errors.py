"""Typed errors of the core. All derive from `schemas.errors.SpendstreamError`, the one root."""

from schemas.errors import DecodeError, ReasonedError, SchemaNotFound, SpendstreamError

__all__ = ["SpendstreamError", "DecodeError", "SchemaNotFound", "InvalidEvent", "ConfigError", "StoreUnavailable"]


class InvalidEvent(ReasonedError):
    """A decoded event that cannot be booked; `reason` is the DLQ code."""


class ConfigError(SpendstreamError):
    """A settings, price book, budget or allocation file that cannot be used."""


class StoreUnavailable(SpendstreamError):
    """The spend store (Redis) did not answer in time."""
