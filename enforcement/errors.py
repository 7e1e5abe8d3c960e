"""Typed errors of the enforcement API; all derive from the one root, SpendstreamError. enforcement/api.py maps
each to an HTTP status in one place."""

from spendstream.errors import SpendstreamError

__all__ = ["Unauthorized", "Forbidden", "NotFound", "Conflict", "InvalidRequest", "MalformedBody", "PayloadTooLarge"]


class Unauthorized(SpendstreamError):
    """No API key, or one that is unknown or revoked (HTTP 401)."""


class Forbidden(SpendstreamError):
    """A valid key acting outside its scope or teams (HTTP 403)."""


class NotFound(SpendstreamError):
    """The named budget or reservation does not exist (HTTP 404)."""


class Conflict(SpendstreamError):
    """Creating something that already exists (HTTP 409)."""


class InvalidRequest(SpendstreamError):
    """A request the models accept but the domain does not (HTTP 422), e.g. an unknown scope kind."""


class MalformedBody(SpendstreamError):
    """A request body that cannot be read at all: not JSON, not OTLP, a bad encoding (HTTP 400)."""


class PayloadTooLarge(SpendstreamError):
    """A body or batch over the ingestion limits (HTTP 413); the message says which limit."""
