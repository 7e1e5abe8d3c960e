"""Chargeback: the four allocation models of the monthly review, as exact integer apportioning. Pure.

Contract:
- Every amount is integer nano-USD. A split uses the largest-remainder rule (`apportion`): parts are floored and
  the leftover units go to the largest remainders (ties: first key in the given order), so a split always sums
  to the amount split — never off by a nano.
- A `Statement`'s lines sum exactly to `Statement.total`, which is direct + shared (+ markup for `real-cost`).
  `statement_cents` turns lines into whole cents that sum exactly to the total rounded (half-even) to the cent.
- Models: `pool` (central pool pays, every line is showback), `proportional` (direct + shared cost split by token
  volume), `real-cost` (direct + shared by key, plus markup on chargeback lines), `budget` (a use case with an
  upfront budget is charged that budget; the central pool absorbs the variance on a `central-pool` line).
- Hybrid policy (`mode_for`): production and staging are chargeback; research, development and unallocated cost
  are showback (shown to the team, paid by the central pool). `pool` is showback everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Mapping, NamedTuple, TypeVar

from spendstream.money import cents, round_half_even

__all__ = ["MODELS", "SHARED_KEYS", "CENTRAL_POOL", "Usage", "Line", "Statement", "apportion", "mode_for",
           "build_statement", "statement_cents", "budget_variance"]

MODELS = ("pool", "proportional", "real-cost", "budget")
SHARED_KEYS = ("spend", "tokens", "requests", "even")
CENTRAL_POOL = "central-pool"
UNALLOCATED = "unallocated"
_CHARGEBACK_ENVS = frozenset({"production", "staging"})
_CENT = 10_000_000
K = TypeVar("K", bound=Hashable)


class Usage(NamedTuple):
    """One owner's direct consumption in the month (from the rollups)."""

    cost_center: str
    team: str
    use_case: str
    environment: str
    cost: int
    tokens: int
    requests: int


class Line(NamedTuple):
    cost_center: str
    team: str
    use_case: str
    environment: str
    mode: str  # chargeback | showback
    direct: int
    shared: int
    markup: int
    amount: int  # what the statement books to this line


class Statement(NamedTuple):
    model: str
    shared_key: str
    lines: list[Line]
    direct_total: int
    shared_total: int
    markup_total: int
    total: int
    notes: list[str]

    def by_cost_center(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for ln in self.lines:
            out[ln.cost_center] += ln.amount
        return dict(out)


def apportion(total: int, weights: Mapping[K, int]) -> dict[K, int]:
    """Split integer `total` (may be negative) in proportion to non-negative integer weights; the parts sum to
    `total` exactly (largest remainder, ties to the earlier key). All-zero weights split evenly.
    Raises ValueError on a negative weight or an empty mapping."""
    keys = list(weights)
    if not keys:
        raise ValueError("nothing to apportion over")
    w = [int(weights[k]) for k in keys]
    if any(x < 0 for x in w):
        raise ValueError("weights must be non-negative")
    if sum(w) == 0:
        w = [1] * len(keys)
    den = sum(w)
    floors, rems = [], []
    for x in w:
        q, r = divmod(total * x, den)
        floors.append(q)
        rems.append(r)
    left = total - sum(floors)
    order = sorted(range(len(keys)), key=lambda i: (-rems[i], i))
    for i in order[:left]:
        floors[i] += 1
    return dict(zip(keys, floors))


def mode_for(u: Usage, model: str = "real-cost") -> str:
    """The hybrid policy: production/staging chargeback; research, development and anything unallocated (no
    team or cost center to bill) showback. The pool model shows back everything."""
    if model == "pool" or UNALLOCATED in (u.team, u.cost_center):
        return "showback"
    return "chargeback" if u.environment in _CHARGEBACK_ENVS else "showback"


def _key_weights(usage: list[Usage], key: str) -> dict[int, int]:
    if key not in SHARED_KEYS:
        raise ValueError(f"shared-cost key must be one of {SHARED_KEYS}, not {key!r}")
    pick = {"spend": lambda u: u.cost, "tokens": lambda u: u.tokens, "requests": lambda u: u.requests,
            "even": lambda u: 1}[key]
    return {i: max(0, pick(u)) for i, u in enumerate(usage)}


def build_statement(model: str, usage: list[Usage], shared: Mapping[str, int] | None = None, *,
                    shared_key: str = "spend", markup_bp: int = 0,
                    budgets: Mapping[str, int] | None = None) -> Statement:
    """The month's statement under `model`. `shared` maps a platform cost name (gateway, logging, ...) to its
    nano-USD amount, prorated over the usage lines by `shared_key`; `markup_bp` (basis points, real-cost only)
    is added to chargeback lines, rounded half-even per line; `budgets` maps a use case to its upfront monthly
    budget (budget model). Raises ValueError on an unknown model or key, or when there is no usage at all."""
    if model not in MODELS:
        raise ValueError(f"chargeback model must be one of {MODELS}, not {model!r}")
    if not usage:
        raise ValueError("no usage in the month: nothing to allocate")
    shared_total = sum((shared or {}).values())
    shared_parts = apportion(shared_total, _key_weights(usage, shared_key))
    direct_total = sum(u.cost for u in usage)
    notes: list[str] = []
    base = [u.cost + shared_parts[i] for i, u in enumerate(usage)]
    markup = [0] * len(usage)
    central = 0
    if model == "proportional":
        if sum(u.tokens for u in usage) == 0:
            notes.append("no token volume in the month: split evenly")
        elif any(u.tokens == 0 and u.cost for u in usage):
            notes.append("lines without tokens (GPU jobs) carry no cost under the proportional model")
        amounts = list(apportion(direct_total + shared_total, {i: max(0, u.tokens) for i, u in enumerate(usage)}).values())
    elif model == "real-cost":
        markup = [round_half_even(b * markup_bp, 10_000) if mode_for(u) == "chargeback" else 0
                  for b, u in zip(base, usage)]
        amounts = [b + m for b, m in zip(base, markup)]
    elif model == "budget":
        amounts, central = _budget_amounts(usage, base, budgets or {}, notes)
    else:
        amounts = base
    lines = [Line(u.cost_center, u.team, u.use_case, u.environment, mode_for(u, model), u.cost,
                  shared_parts[i], markup[i], amounts[i]) for i, u in enumerate(usage)]
    if model == "budget":
        lines.append(Line(CENTRAL_POOL, "platform", "budget variance", "-", "showback", 0, 0, 0, central))
    total = direct_total + shared_total + sum(markup)
    assert sum(ln.amount for ln in lines) == total  # the invariant every model keeps
    return Statement(model, shared_key, lines, direct_total, shared_total, sum(markup), total, notes)


def _budget_amounts(usage: list[Usage], base: list[int], budgets: Mapping[str, int],
                    notes: list[str]) -> tuple[list[int], int]:
    """Budgeted use cases are charged their budget (split over their lines by actual cost); the rest at actual.
    The central pool books the difference to actual, so the statement still sums to the total."""
    amounts = list(base)
    by_uc: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(usage):
        by_uc[u.use_case].append(i)
    for uc, budget in budgets.items():
        idx = by_uc.get(uc)
        if not idx:
            notes.append(f"use case {uc} has a budget but no spend this month")
            continue
        for i, part in apportion(budget, {i: max(0, base[i]) for i in idx}).items():
            amounts[i] = part
    return amounts, sum(base) - sum(amounts)


def statement_cents(amounts: Mapping[K, int], total_cents: int | None = None) -> dict[K, int]:
    """Whole cents per key that sum exactly to `total_cents` (default: cents(sum of amounts), half-even): every
    line is floored to the cent and the leftover cents go to the largest sub-cent remainders (ties to the
    earlier key). A given `total_cents` must lie within [sum of floors, sum of floors + len] — true for the
    cents a parent line received from this same function (nested statements), else ValueError."""
    keys = list(amounts)
    total_c = cents(sum(amounts.values())) if total_cents is None else total_cents
    floors = {k: amounts[k] // _CENT for k in keys}
    rems = {k: amounts[k] - floors[k] * _CENT for k in keys}
    left = total_c - sum(floors.values())
    if not 0 <= left <= len(keys):
        raise ValueError(f"{total_c} cents cannot be split over these amounts")
    pos = {k: i for i, k in enumerate(keys)}
    for k in sorted(keys, key=lambda k: (-rems[k], pos[k]))[:left]:
        floors[k] += 1
    return floors


def budget_variance(actual: Mapping[str, int], budgets: Mapping[str, int]) -> list[tuple[str, int, int, int]]:
    """(name, budget, actual, actual - budget) for every name with a budget or spend, sorted by name."""
    names = sorted(set(actual) | set(budgets))
    return [(n, budgets.get(n, 0), actual.get(n, 0), actual.get(n, 0) - budgets.get(n, 0)) for n in names]
