"""The check's request and answer models (HTTP body, in-process client) and how a budget's state is shown in
them. Money is a decimal USD string here, integer nano-USD inside."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.models import Budget
from spendstream.allocation import UNALLOCATED
from spendstream.budgets import BudgetState
from spendstream.money import format_usd

__all__ = ["CheckRequest", "CheckResponse", "AppliedBudget", "applied", "applied_unknown"]

Name = Field(min_length=1, max_length=200)
_TAGS = ("use_case", "cost_center", "environment")


def _json_integer(v: object) -> object:
    if isinstance(v, (bool, str)):  # the schema says integer: lax mode took "12" and true as numbers
        raise ValueError("must be a JSON integer")
    return v


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class CheckRequest(BaseModel):
    """A call about to be made. Give token estimates (priced with the price book) or estimated_cost_usd."""

    # the rule `_estimate` enforces, published in the OpenAPI so a schema-valid request is an answerable one
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["estimated_cost_usd"], "properties": {"estimated_cost_usd": {"type": "string"}}},
        {"required": ["estimated_input_tokens"], "properties": {"estimated_input_tokens": {"minimum": 1}}},
        {"required": ["estimated_output_tokens"], "properties": {"estimated_output_tokens": {"minimum": 1}}},
    ]})

    team: str = Name
    use_case: str = Field(default=UNALLOCATED, min_length=1, max_length=200)
    cost_center: str = Field(default=UNALLOCATED, min_length=1, max_length=200)
    environment: str = Field(default=UNALLOCATED, min_length=1, max_length=50)
    provider: str = Field(min_length=1, max_length=100)
    model: str = Name
    estimated_input_tokens: JsonInt = Field(default=0, ge=0, le=100_000_000)
    estimated_output_tokens: JsonInt = Field(default=0, ge=0, le=100_000_000)
    estimated_cost_usd: str | None = Field(default=None, pattern=r"^\d{1,9}(\.\d{1,9})?$", description="USD decimal")
    project: str | None = Field(default=None, min_length=1, max_length=200)
    customer: str | None = Field(default=None, min_length=1, max_length=200)
    user_hash: str | None = Field(default=None, min_length=1, max_length=200, description="hashed end-user id")
    reserve: bool = Field(default=False, strict=True, description="hold the estimate until settled, released or expired")
    hold_ttl_s: JsonInt = Field(default=300, ge=1, le=86_400, description="seconds a reservation holds when not settled")

    @model_validator(mode="before")
    @classmethod
    def _missing_tags(cls, data: object) -> object:
        """A null optional tag is booked to `unallocated`, as the stream does for events."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (v is None and k in _TAGS)}
        return data

    @model_validator(mode="after")
    def _estimate(self) -> "CheckRequest":
        if self.estimated_cost_usd is None and not (self.estimated_input_tokens or self.estimated_output_tokens):
            raise ValueError("give estimated_input_tokens / estimated_output_tokens or estimated_cost_usd")
        return self


class AppliedBudget(BaseModel):
    """One budget that applied. Amounts are USD decimal strings; null when the spend store was unavailable."""

    budget_id: str
    scope: str
    period: str
    window: str
    mode: str
    action: str
    limit_usd: str
    spent_usd: str | None
    held_usd: str | None
    remaining_usd: str | None
    carried_usd: str | None = Field(default=None, description="carry-over: unused budget of the previous period "
                                    "included in limit_usd")


class CheckResponse(BaseModel):
    decision: Literal["allow", "warn", "throttle", "deny", "downgrade"]
    reason: str
    estimated_cost_usd: str
    budgets: list[AppliedBudget]
    suggested_model: str | None = Field(default=None, description="on downgrade: the model to call instead")
    retry_after: float | None = Field(default=None, description="on throttle: seconds to wait before retrying")
    lifts_at_ms: int | None = Field(default=None, description="on a deny by a rolling budget: when enough old spend "
                                    "will have left its window for this call to fit, if nothing new is booked")
    rate_per_s: float | None = Field(default=None, description="on throttle: calls per second the scope is limited to")
    reservation_id: str | None = Field(default=None, description="when reserve was asked and the estimate is held")
    api_key_id: str | None = Field(default=None, description="with a reservation: the key that made it; put it in "
                                   "the usage event's attributes.api_key_id so the spend books to scope api_key")


def applied(s: BudgetState) -> AppliedBudget:
    b = s.budget
    return AppliedBudget(
        budget_id=b.id, scope=f"{b.scope.kind}:{b.scope.value}", period=b.window_name, window=s.window, mode=b.mode,
        action=b.action, limit_usd=format_usd(s.limit), spent_usd=format_usd(s.spent), held_usd=format_usd(s.held),
        remaining_usd=format_usd(s.remaining), carried_usd=format_usd(s.carried) if b.carry_over else None,
    )


def applied_unknown(b: Budget, window: str) -> AppliedBudget:
    return AppliedBudget(
        budget_id=b.id, scope=f"{b.scope.kind}:{b.scope.value}", period=b.window_name, window=window, mode=b.mode,
        action=b.action, limit_usd=format_usd(b.limit_nanos), spent_usd=None, held_usd=None,
        remaining_usd=None,
    )
