"""The enforcement check: which budgets apply to a request, how much they have spent and hold, and the answer;
with `reserve`, the estimate is held against those budgets in the same Redis step that checks them.

Shared by the HTTP API and the in-process client, so both give the same answer. Money is integer nano-USD
inside and a decimal string in the request / response.
"""

from __future__ import annotations

import asyncio
import uuid

from enforcement.check_models import AppliedBudget, CheckRequest, CheckResponse, applied, applied_unknown
from schemas.models import Budget
from spendstream.budget_windows import BudgetWindow, budget_window, lift_at_ms
from spendstream.budgets import REFUSING, BudgetState, budget_state, decide
from spendstream.carry_over import CarryOver
from spendstream.errors import StoreUnavailable
from spendstream.groups import GROUP_KINDS, group_budgets_for
from spendstream.money import format_usd, usd_to_nanos
from spendstream.ports import BudgetLog, Cell, Clock, Holds, RateLimiter, SpendStore, ThrottleBuckets
from spendstream.pricing import PriceBook
from spendstream.rate_limits import rate_counters
from spendstream.scopes import optional_scopes, scope_values
from spendstream.ttl_cache import TtlCache

__all__ = ["CheckRequest", "CheckResponse", "AppliedBudget", "Checker", "request_scopes", "STORE_UNAVAILABLE"]

STORE_UNAVAILABLE = "spend store unavailable"
REFUSALS = REFUSING  # the actions that stop a call at an enforce budget's limit


def request_scopes(req: CheckRequest, api_key: str | None = None) -> set[tuple[str, str]]:
    """The scopes the stream will book this call's cost to (the same fan-out, spendstream.scopes). `api_key`:
    the id of the enforcement key that asks (scope api_key)."""
    return {*scope_values(req.team, req.cost_center, req.use_case, req.environment, req.provider, req.model),
            *optional_scopes(req.project, req.customer, req.user_hash, api_key)}


def blocks(b: Budget) -> bool:
    """An enforce budget whose action stops the call: its spent + held never exceeds its limit."""
    return b.mode == "enforce" and b.action in REFUSALS


class Checker:
    """Answers checks. Budgets are cached in-process for `cache_ttl_s` (the API's own budget writes invalidate
    it; other writers are seen within that time); the last list read stays in use while the store is unreachable,
    for the fail modes. Raises InvalidEvent (via the price book) when the estimate cannot be priced."""

    def __init__(self, store: SpendStore, holds: Holds, throttle: ThrottleBuckets, prices: PriceBook, clock: Clock,
                 *, cache_ttl_s: float = 1.0, fiscal_start_month: int = 1, rates: RateLimiter | None = None,
                 budget_log: BudgetLog | None = None) -> None:
        self.store = store
        self.budget_log = budget_log  # the admin API records budget changes here (the budget history)
        self.reservations = holds
        self.throttle = throttle
        self.prices = prices
        self.clock = clock
        self.fiscal_start_month = fiscal_start_month
        self.rates = rates  # None: budgets' per-minute limits are not enforced (in-process tools, tests)
        self.carry = CarryOver(holds.observe, clock.monotonic, fiscal_start_month)
        self._budgets: TtlCache[str, list[Budget]] = TtlCache(cache_ttl_s, clock.monotonic)
        self._members: TtlCache[tuple[str, str], dict[str, str]] = TtlCache(cache_ttl_s, clock.monotonic)
        self._refresh = asyncio.Lock()
        self._failed_at = float("-inf")

    def clock_ms(self) -> int:
        return self.clock.now_ms()

    def estimate(self, req: CheckRequest) -> int:
        if req.estimated_cost_usd is not None:
            return usd_to_nanos(req.estimated_cost_usd)
        event = {
            "provider": req.provider, "model": req.model, "input_tokens": req.estimated_input_tokens,
            "output_tokens": req.estimated_output_tokens, "request_count": 1, "environment": req.environment,
            "event_time": self.clock_ms(),
        }
        return self.prices.price(event).charged_nanos

    async def budgets(self) -> list[Budget]:
        """All budgets, from the cache when fresh. Raises StoreUnavailable."""
        cached = self._budgets.get("all")
        if cached is not None:
            return cached
        asked = self.clock.monotonic()
        async with self._refresh:  # one read in flight; concurrent callers wait for it
            cached = self._budgets.get("all")
            if cached is not None:
                return cached
            if self._failed_at >= asked:  # the read we waited for failed: do not queue another timeout
                raise StoreUnavailable(STORE_UNAVAILABLE)
            try:
                return self._budgets.put("all", await self.store.budgets())
            except StoreUnavailable:
                self._failed_at = self.clock.monotonic()
                raise

    def last_budgets(self) -> list[Budget]:
        """The budgets last read, fresh or not ([] before the first read): for answering by fail modes."""
        return self._budgets.stale("all") or []

    def invalidate_budgets(self) -> None:
        self._budgets.expire()
        self._members.clear()

    async def check(self, req: CheckRequest, api_key: str | None = None) -> CheckResponse:
        """The decision for `req` asked with the key `api_key` (its id; None in-process); with req.reserve and a
        non-refusing answer, the estimate is held and reservation_id names the hold. Never raises
        StoreUnavailable: answers by the budgets' fail modes."""
        now = self.clock_ms()
        estimate = self.estimate(req)
        scopes = request_scopes(req, api_key)
        try:
            budgets = await self.budgets()
        except StoreUnavailable:
            return self._unavailable([b for b in self.last_budgets() if (b.scope.kind, b.scope.value) in scopes],
                                     estimate, now)
        pairs = [(b, (b.scope.kind, b.scope.value)) for b in budgets if (b.scope.kind, b.scope.value) in scopes]
        if any(b.selector is not None for b in budgets):
            try:
                labels = await self._labels([s for s in scopes if s[0] in GROUP_KINDS])
            except StoreUnavailable:
                return self._unavailable([b for b, _ in pairs], estimate, now)
            pairs += group_budgets_for(budgets, scopes, lambda s: labels.get(s, {}))
        applicable, reads = [b for b, _ in pairs], [s for _, s in pairs]
        wins = [self.window_of(b, now) for b in applicable]
        windows = [w.label for w in wins]
        counters = rate_counters(applicable, req.estimated_input_tokens + req.estimated_output_tokens) \
            if self.rates is not None else []
        too_big = next((c for c in counters if c.amount > c.limit), None)
        rate_wait = None
        rid = uuid.uuid4().hex if req.reserve and too_big is None else None
        try:
            if counters and too_big is None:
                admitted_rate, wait = await self.rates.take(counters, now)
                if not admitted_rate:
                    rate_wait, rid = wait, None
            carried = await self.carry.carried(applicable, wins, now) if any(b.carry_over for b in applicable) \
                else [0] * len(applicable)
            cells = _cells(applicable, reads, wins, carried, refuse=estimate > 0)  # a zero estimate is never refused
            index = {(c.kind, c.value, c.window): i for i, c in enumerate(cells)}
            if rid is not None:
                admitted, rows = await self.reservations.reserve(
                    rid, req.team, cells, estimate, now, req.hold_ttl_s * 1000, api_key)
            else:
                admitted = False
                rows = [(c.get("spend", 0), c.get("held", 0)) for c in await self.reservations.observe(cells, now)]
        except StoreUnavailable:
            return self._unavailable(applicable, estimate, now)
        states = [budget_state(b, w, *rows[index[(*scope, w)]], carried=c)
                  for b, scope, w, c in zip(applicable, reads, windows, carried)]
        decision, reason, binding = decide(states, estimate)
        if too_big is not None:
            decision, reason, binding = "deny", (f"budget {too_big.budget_id}: {too_big.amount} estimated tokens "
                                                 f"exceed its {too_big.limit} tokens per minute by themselves"), None
        elif rate_wait is not None:
            ids = ", ".join(sorted({c.budget_id for c in counters}))
            decision, reason, binding = "throttle", f"per-minute rate limit reached ({ids})", None
        if rid is not None and not admitted and decision not in REFUSALS:
            decision, reason = "deny", "reservation refused: a budget's room was taken concurrently"
        shown = [budget_state(s.budget, s.window, s.spent, s.held + estimate, s.carried) for s in states] \
            if admitted else states
        out = CheckResponse(decision=decision, reason=reason, estimated_cost_usd=format_usd(estimate),
                            budgets=[applied(s) for s in shown], reservation_id=rid if admitted else None,
                            api_key_id=api_key if admitted else None)
        if binding is not None and decision == "downgrade":
            out.suggested_model = binding.budget.downgrade_model
        if binding is not None and decision == "deny" and binding.window.startswith("r:"):
            i = next(i for i, s in enumerate(states) if s is binding)
            out.lifts_at_ms = await self._lift(binding, reads[i], wins[i], estimate)
        if rate_wait is not None:
            out.retry_after = rate_wait
        if binding is not None and decision == "throttle":
            out.rate_per_s = binding.budget.throttle_rps
            try:
                out.retry_after = await self.throttle.retry_after_s(binding.budget, now)
            except StoreUnavailable:
                out.retry_after = round(1 / binding.budget.throttle_rps, 3)
        return out

    async def _lift(self, s: BudgetState, scope: tuple[str, str], w: BudgetWindow, estimate: int) -> int | None:
        """When the rolling window's old spend will have left enough room for `estimate` (one more read)."""
        room_needed = s.limit - s.held - estimate + 1  # fits when the remaining spend drops below this
        if room_needed <= 0:
            return None  # held money or the estimate alone fill the limit: old spend leaving is not enough
        try:
            parts = [c.get("spend", 0) for c in await self.store.read_cells((*scope, p) for p in w.parts)]
        except StoreUnavailable:
            return None
        return lift_at_ms(w, parts, room_needed)

    async def _labels(self, members: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
        """Budget-group labels of these members, cached like the budgets. Raises StoreUnavailable."""
        out = {m: lab for m in members if (lab := self._members.get(m)) is not None}
        missing = [m for m in members if m not in out]
        if missing:
            for m, lab in zip(missing, await self.store.member_labels(missing)):
                out[m] = self._members.put(m, lab)
        return out

    def window_of(self, b: Budget, now_ms: int) -> BudgetWindow:
        """The counters budget `b` reads at now_ms (calendar, fiscal quarter or rolling)."""
        return budget_window(b.period, now_ms, window=b.window, length=b.length,
                             fiscal_start_month=self.fiscal_start_month)

    def _unavailable(self, budgets: list[Budget], estimate: int, now: int) -> CheckResponse:
        closed = [b for b in budgets if b.effective_fail_mode == "closed"]
        return CheckResponse(
            decision="deny" if closed else "allow",
            reason=STORE_UNAVAILABLE + (f": budget {closed[0].id} fails closed" if closed else ": failing open"),
            estimated_cost_usd=format_usd(estimate),
            budgets=[applied_unknown(b, self.window_of(b, now).label) for b in budgets],
        )


def _cells(budgets: list[Budget], scopes: list[tuple[str, str]], windows: list[BudgetWindow], carried: list[int],
           refuse: bool = True) -> list[Cell]:
    """One cell per (scope read, window), held to the tightest blocking limit of its budgets."""
    limits: dict[tuple[str, str, str], int] = {}
    shapes: dict[str, BudgetWindow] = {}
    for b, scope, w, c in zip(budgets, scopes, windows, carried):
        k = (*scope, w.label)
        shapes[w.label] = w
        cur = limits.setdefault(k, -1)
        if refuse and blocks(b):
            lim = b.limit_nanos + c
            limits[k] = lim if cur < 0 else min(cur, lim)
    return [Cell(kind, value, w, lim, shapes[w].expire_at_s, shapes[w].parts)
            for (kind, value, w), lim in limits.items()]
