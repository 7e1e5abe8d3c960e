"""Typed errors of the integrations; all derive from the one root, `SpendstreamError`."""

from __future__ import annotations

from schemas.errors import SpendstreamError

__all__ = ["PublisherError", "BudgetDenied", "EnforcementUnavailable"]


class PublisherError(SpendstreamError):
    """The publisher cannot be built or used (bad config, closed). Never raised from `record()`."""


class BudgetDenied(SpendstreamError):
    """The enforcement API denied a model call before it was made.

    `reason` is the API's explanation; `decision` the raw answer (budget_id, suggested_model, retry_after...)."""

    def __init__(self, reason: str, decision: dict | None = None) -> None:
        self.reason = reason
        self.decision = dict(decision or {})
        budget = self.decision.get("budget_id")
        super().__init__(f"spend budget denied this call{f' (budget {budget})' if budget else ''}: {reason}")


class EnforcementUnavailable(SpendstreamError):
    """The enforcement API did not answer (or answered garbage)."""
