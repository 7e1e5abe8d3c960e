"""The enforcement check: which budgets apply to a request, how much they have spent, and the answer.

Shared by the HTTP API and the in-process client, so both give the same answer.
"""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from enforcement.redis_store import RedisSpendStore
from schemas.models import Budget
from spendstream.allocation import UNALLOCATED
from spendstream.budgets import BudgetState, budget_state, decide
from spendstream.errors import StoreUnavailable
from spendstream.money import format_usd, usd_to_nanos
from spendstream.pricing import PriceBook
from spendstream.windows import period_window

__all__ = ["CheckRequest", "CheckResponse", "AppliedBudget", "Checker", "request_scopes"]


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: str = Field(min_length=1, max_length=200)
    use_case: str = Field(default=UNALLOCATED, min_length=1, max_length=200)
    cost_center: str = Field(default=UNALLOCATED, min_length=1, max_length=200)
    environment: str = Field(default=UNALLOCATED, min_length=1, max_length=50)
    provider: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1, max_length=200)
    estimated_input_tokens: int = Field(default=0, ge=0, le=100_000_000)
    estimated_output_tokens: int = Field(default=0, ge=0, le=100_000_000)
    estimated_cost_usd: str | None = Field(default=None, pattern=r"^\d{1,9}(\.\d{1,9})?$")

    @model_validator(mode="after")
    def _estimate(self) -> "CheckRequest":
        if self.estimated_cost_usd is None and not (self.estimated_input_tokens or self.estimated_output_tokens):
            raise ValueError("give estimated_input_tokens / estimated_output_tokens or estimated_cost_usd")
        return self


class AppliedBudget(BaseModel):
    budget_id: str
    scope: str
    period: str
    mode: str
    spent_usd: str
    limit_usd: str
    remaining_usd: str


class CheckResponse(BaseModel):
    decision: str
    reason: str
    estimated_cost_usd: str
    budgets: list[AppliedBudget]
    suggested_model: str | None = None
    retry_after: float | None = None


def request_scopes(req: CheckRequest) -> set[tuple[str, str]]:
    return {
        ("org", "all"), ("cost_center", req.cost_center), ("team", req.team), ("use_case", req.use_case),
        ("team_use_case", f"{req.team}/{req.use_case}"), ("model", f"{req.provider}/{req.model}"),
        ("environment", req.environment),
    }


class Checker:
    def __init__(self, store: RedisSpendStore, prices: PriceBook, clock_ms: Callable[[], int]) -> None:
        self.store = store
        self.prices = prices
        self.clock_ms = clock_ms

    def estimate(self, req: CheckRequest) -> int:
        if req.estimated_cost_usd is not None:
            return usd_to_nanos(req.estimated_cost_usd)
        event = {
            "provider": req.provider, "model": req.model, "input_tokens": req.estimated_input_tokens,
            "output_tokens": req.estimated_output_tokens, "request_count": 1, "environment": req.environment,
            "event_time": self.clock_ms(),
        }
        return self.prices.price(event).charged_nanos

    async def check(self, req: CheckRequest) -> CheckResponse:
        now = self.clock_ms()
        estimate = self.estimate(req)
        scopes = request_scopes(req)
        try:
            budgets = [b for b in await self.store.budgets() if (b.scope.kind, b.scope.value) in scopes]
            windows = [period_window(b.period, now) for b in budgets]
            cells = await self.store.read_cells((b.scope.kind, b.scope.value, w) for b, w in zip(budgets, windows))
        except StoreUnavailable:
            return self._unavailable(budgets if "budgets" in locals() else [], estimate)
        states = [budget_state(b, w, c.get("spend", 0), c.get("held", 0)) for b, w, c in zip(budgets, windows, cells)]
        decision, reason, binding = decide(states, estimate)
        return CheckResponse(
            decision=decision, reason=reason, estimated_cost_usd=format_usd(estimate),
            budgets=[_applied(s) for s in states],
            suggested_model=binding.budget.downgrade_model if binding and decision == "downgrade" else None,
        )

    @staticmethod
    def _unavailable(budgets: list[Budget], estimate: int) -> CheckResponse:
        closed = any(b.effective_fail_mode == "closed" for b in budgets)
        return CheckResponse(
            decision="deny" if closed else "allow", reason="spend store unavailable",
            estimated_cost_usd=format_usd(estimate), budgets=[],
        )


def _applied(s: BudgetState) -> AppliedBudget:
    b = s.budget
    return AppliedBudget(
        budget_id=b.id, scope=f"{b.scope.kind}:{b.scope.value}", period=b.period, mode=b.mode,
        spent_usd=format_usd(s.spent), limit_usd=format_usd(s.limit), remaining_usd=format_usd(s.remaining),
    )
