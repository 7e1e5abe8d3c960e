"""Budgets: the pure evaluation of spend against limits, for the enforcement check and for alerts.

A budget applies to an event or a request when its scope is one of the request's scopes (org, cost_center, team,
use_case, team/use_case, provider/model, environment). Only `enforce` budgets throttle / deny / downgrade;
`showback` budgets at most warn.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.models import Budget
from spendstream.money import format_usd

__all__ = ["BudgetState", "budget_state", "carried_over", "decide", "DECISION_RANK", "REFUSING"]

DECISION_RANK = {"allow": 0, "warn": 1, "downgrade": 2, "throttle": 3, "deny": 4}
REFUSING = ("downgrade", "throttle", "deny")


@dataclass(frozen=True, slots=True)
class BudgetState:
    budget: Budget
    window: str
    spent: int  # nano-USD booked in the window
    held: int  # nano-USD reserved but not yet settled
    limit: int  # the effective limit: the budget's own plus `carried`
    carried: int = 0  # nano-USD carried over from the previous period

    @property
    def remaining(self) -> int:
        return self.limit - self.spent - self.held

    @property
    def percent(self) -> float:
        """Share of the limit used, for display only (money stays integer)."""
        return 100.0 * (self.spent + self.held) / self.limit if self.limit else 100.0

    def crossed(self) -> list[int]:
        """Thresholds (percent) at or below the current spend; integer-exact."""
        return [t for t in self.budget.thresholds if (self.spent + self.held) * 100 >= self.limit * t]


def budget_state(budget: Budget, window: str, spent: int, held: int = 0, carried: int = 0) -> BudgetState:
    return BudgetState(budget, window, spent, held, budget.limit_nanos + carried, carried)


def carried_over(budget: Budget, previous_spent: int) -> int:
    """Nano-USD a carry-over budget brings from its previous period: the unused part of the previous period's OWN
    limit, capped at carry_over_cap_pct % of the limit (floor). Never chained (money carried in is not carried
    again), so over any run of periods spend stays within the sum of the limits. 0 without carry_over."""
    if not budget.carry_over:
        return 0
    unused = max(0, budget.limit_nanos - previous_spent)
    return min(unused, budget.limit_nanos * budget.carry_over_cap_pct // 100)


def decide(states: list[BudgetState], estimate: int) -> tuple[str, str, BudgetState | None]:
    """(decision, reason, binding budget) for a call estimated to cost `estimate` nano-USD.

    The strictest applicable answer wins. An enforce budget whose remaining room is smaller than the estimate
    answers its action; a showback budget in the same state, or any budget past its highest soft threshold,
    answers warn. A call estimated at zero (a model priced at $0) is never refused: it spends nothing, so it
    answers allow and the reason names the budget that would have refused it.
    """
    best = ("allow", "within budget", None)
    for s in states:
        if s.remaining < estimate or s.remaining <= 0:
            if s.budget.mode == "enforce":
                verdict = s.budget.action
                reason = (f"budget {s.budget.id}: this call is estimated at {format_usd(estimate, 6)} USD, "
                          f"{format_usd(max(s.remaining, 0), 6)} USD left of {format_usd(s.limit, 2)} USD "
                          f"({s.percent:.1f}% used or held)")
            else:
                verdict, reason = "warn", f"showback budget {s.budget.id} over its limit"
        elif s.crossed():
            verdict, reason = "warn", f"budget {s.budget.id} at {s.percent:.1f}% of limit"
        else:
            continue
        if DECISION_RANK[verdict] > DECISION_RANK[best[0]]:
            best = (verdict, reason, s)
    if estimate == 0 and best[0] in REFUSING:
        return "allow", f"zero estimated cost, never blocked ({best[1]})", best[2]
    return best
