"""Budget alerts and throttle decisions: pure functions of (budget, spend, now).

Kinds of alert, each fired once per (budget, period window, kind, threshold) — the caller dedupes:
  threshold  spend crossed a threshold (default 50 / 80 / 100 % of the limit);
  forecast   the projected period-end spend exceeds the limit while spend is still below it. Method: run rate
             over the elapsed part of the period, projected = spent x period_length / elapsed, computed only once
             at least `min_sample` of the period has elapsed (default 10 %, and never less than one hour), so the
             first minutes of a month do not extrapolate noise. A rolling window has no end: its projection is
             the window one bucket ahead, projected = spent - the oldest bucket (it leaves) + the last complete
             bucket (the recent rate repeats);
  spike      the current hour's spend is above k x the trailing mean of the previous `spike_hours` hours
             (default k = 3 over 24 h; no alert while the trailing mean is zero);
  resolve    a previously raised condition no longer holds (budget raised) — PagerDuty resolves its incident.
A decision (throttle / deny / downgrade) is due when an `enforce` budget's spend reaches its limit; it lasts
until the period window ends or the budget is raised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from schemas.models import Budget
from spendstream.budgets import BudgetState
from spendstream.money import format_usd
from spendstream.windows import HOUR_MS

__all__ = ["AlertPolicy", "Alert", "DecisionRecord", "threshold_alerts", "forecast_alert", "projected_spend",
           "spike_alert", "decision_due", "unpriced_model_alerts", "rolling_forecast_alert"]


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    min_sample_pct: int = 10
    min_sample_ms: int = HOUR_MS
    spike_k: int = 3
    spike_hours: int = 24


@dataclass(frozen=True, slots=True)
class Alert:
    budget_id: str
    scope: str
    kind: str  # threshold | forecast | spike | resolve
    window: str
    threshold: int  # percent for threshold, k for spike, 100 for forecast, 0 for resolve
    spent_nanos: int
    limit_nanos: int
    projected_nanos: int | None
    mode: str
    at_ms: int
    message: str

    @property
    def dedupe_key(self) -> tuple[str, str, str, int]:
        return (self.budget_id, self.window, self.kind, self.threshold)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["spent_usd"] = format_usd(self.spent_nanos)
        d["limit_usd"] = format_usd(self.limit_nanos)
        d["projected_usd"] = None if self.projected_nanos is None else format_usd(self.projected_nanos)
        return d


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    budget_id: str
    scope: str
    action: str  # throttle | deny | downgrade | lifted
    window: str
    expires_at_ms: int
    suggested_model: str | None
    rate_per_s: float | None
    reason: str
    at_ms: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _scope(b: Budget) -> str:
    return f"{b.scope.kind}:{b.scope.value}"


def threshold_alerts(s: BudgetState, now_ms: int) -> list[Alert]:
    b = s.budget
    return [
        Alert(b.id, _scope(b), "threshold", s.window, t, s.spent, s.limit, None, b.mode, now_ms,
              f"{b.id}: spend {format_usd(s.spent, 2)} USD crossed {t}% of {format_usd(s.limit, 2)} USD ({s.window})")
        for t in s.crossed()
    ]


def projected_spend(spent: int, start_ms: int, end_ms: int, now_ms: int, policy: AlertPolicy) -> int | None:
    """Run-rate projection of period-end spend (integer, floor), or None before the minimum sample."""
    length = end_ms - start_ms
    elapsed = min(max(now_ms - start_ms, 0), length)
    if elapsed < max(length * policy.min_sample_pct // 100, policy.min_sample_ms) or elapsed == 0:
        return None
    return spent * length // elapsed


def forecast_alert(s: BudgetState, start_ms: int, end_ms: int, now_ms: int, policy: AlertPolicy) -> Alert | None:
    if s.spent >= s.limit:
        return None  # already breached: that is a threshold alert, not a forecast
    projected = projected_spend(s.spent, start_ms, end_ms, now_ms, policy)
    if projected is None or projected <= s.limit:
        return None
    b = s.budget
    return Alert(b.id, _scope(b), "forecast", s.window, 100, s.spent, s.limit, projected, b.mode, now_ms,
                 f"{b.id}: projected {format_usd(projected, 2)} USD by {s.window} end exceeds the "
                 f"{format_usd(s.limit, 2)} USD limit (run rate over elapsed period; spent {format_usd(s.spent, 2)})")


def rolling_forecast_alert(s: BudgetState, parts: list[int], now_ms: int) -> Alert | None:
    """Forecast of a rolling window from its bucket spends `parts` (oldest first, the current bucket last)."""
    if s.spent >= s.limit or len(parts) < 3:
        return None
    projected = s.spent - parts[0] + parts[-2]
    if projected <= s.limit:
        return None
    b = s.budget
    return Alert(b.id, _scope(b), "forecast", s.window, 100, s.spent, s.limit, projected, b.mode, now_ms,
                 f"{b.id}: at the last bucket's rate the {b.window_name} window reaches {format_usd(projected, 2)} USD,"
                 f" over the {format_usd(s.limit, 2)} USD limit (spent {format_usd(s.spent, 2)})")


def spike_alert(b: Budget, hour_window: str, hour_spend: int, trailing: list[int], now_ms: int,
                policy: AlertPolicy) -> Alert | None:
    """`trailing` = spend of the previous hours (oldest first), zero-filled."""
    if not trailing:
        return None
    total = sum(trailing)
    if total == 0:
        return None
    # hour_spend > k * total / n  <=>  hour_spend * n > k * total  (integer-exact)
    if hour_spend * len(trailing) <= policy.spike_k * total:
        return None
    mean = total // len(trailing)
    return Alert(b.id, _scope(b), "spike", hour_window, policy.spike_k, hour_spend, 0, None, b.mode, now_ms,
                 f"{b.id}: {format_usd(hour_spend, 2)} USD in {hour_window} is more than {policy.spike_k}x the "
                 f"trailing {len(trailing)} h mean of {format_usd(mean, 2)} USD")


def decision_due(s: BudgetState, end_ms: int, now_ms: int) -> DecisionRecord | None:
    """The throttle / deny / downgrade decision an enforce budget at or over its limit calls for."""
    b = s.budget
    if b.mode != "enforce" or s.spent < s.limit or b.action == "warn":
        return None
    return DecisionRecord(
        b.id, _scope(b), b.action, s.window, end_ms,
        b.downgrade_model if b.action == "downgrade" else None,
        b.throttle_rps if b.action == "throttle" else None,
        f"{b.id}: spend {format_usd(s.spent, 2)} USD reached the {format_usd(s.limit, 2)} USD limit", now_ms,
    )


def unpriced_model_alerts(models: Iterable[tuple[str, str]], now_ms: int) -> list[Alert]:
    """One alert per (provider, model) priced by the fallback rule, for the platform team (scope org:all): the
    book needs an entry. The caller fires each once per model (a set-once marker keyed on the model)."""
    return [Alert(f"unpriced:{p}/{m}", "org:all", "unpriced_model", "model", 0, 0, 0, None, "showback", now_ms,
                  f"first event on unpriced model {p}/{m}: booked at the fallback price; add it to the price book "
                  "(spendstream prices unpriced lists it with a suggested entry)")
            for p, m in sorted(set(models))]
