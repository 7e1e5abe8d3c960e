"""Chart specs for console.js (uPlot): x values in epoch seconds, y values in USD as numbers for drawing only —
the exact figures are printed as text in the table beside every chart. Series colours come from console.js
(Okabe-Ito, colour-blind safe) by position, and dashed lines tell forecast and limits apart without colour."""

from __future__ import annotations

from datetime import UTC

from enforcement.console.views import Overview, TeamView
from reports.usage import UsageRow

__all__ = ["overview_charts", "team_charts", "pivot", "TOP"]

TOP = 6  # series per breakdown chart; the rest are summed as "other"


def _usd(n: int) -> float:
    return round(n / 1e9, 6)


def _ts(r: UsageRow) -> int:
    return int(r.period_start.replace(tzinfo=UTC).timestamp())


def pivot(rows: list[UsageRow]) -> tuple[list[int], list[tuple[str, list[int]]]]:
    """Rows per (period, key) -> x (periods) and one nano-USD series per key, the TOP largest keys and "other"."""
    xs = sorted({_ts(r) for r in rows})
    totals: dict[str, int] = {}
    for r in rows:
        totals[r.key or ""] = totals.get(r.key or "", 0) + r.cost_nanos
    top = [k for k, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]]
    idx = {x: i for i, x in enumerate(xs)}
    series = {k: [0] * len(xs) for k in [*top, "other"]}
    for r in rows:
        k = r.key or ""
        series[k if k in top else "other"][idx[_ts(r)]] += r.cost_nanos
    out = [(k, v) for k, v in series.items() if k != "other" or any(v)]
    return xs, out


def _breakdown(rows: list[UsageRow], title: str) -> dict:
    xs, series = pivot(rows)
    return {"title": title, "x": xs, "series": [{"label": k, "values": [_usd(v) for v in vs], "kind": "line", "total": sum(vs)}
                                                for k, vs in series]}


def overview_charts(v: Overview) -> dict[str, dict]:
    return {"daily": {"title": "Org spend per day (USD)", "x": [_ts(r) for r in v.daily],
                      "series": [{"label": "spend", "values": [_usd(r.cost_nanos) for r in v.daily],
                                  "kind": "bars"}]}}


def team_charts(v: TeamView) -> dict[str, dict]:
    charts = {"use_case": _breakdown(v.by_use_case, f"{v.team}: spend per day by use case (USD)"),
              "model": _breakdown(v.by_model, f"{v.team}: spend per day by model (USD)")}
    for bd in v.burndowns:
        xs = [t for t, _ in bd.days]
        end = bd.end_ms // 1000
        series = [{"label": "spend to date", "values": [_usd(c) for _, c in bd.days] + [None], "kind": "line"}]
        if bd.forecast is not None:
            series.append({"label": "forecast", "values": [None] * (len(xs) - 1) + [_usd(bd.spent), _usd(bd.forecast)],
                           "kind": "dash"})
        for t in bd.budget.thresholds:
            series.append({"label": f"{t}% of limit", "values": [_usd(bd.limit * t // 100)] * (len(xs) + 1),
                           "kind": "limit"})
        charts[f"burn-{bd.budget.id}"] = {"title": f"{bd.budget.id}: burn-down of {bd.window} (USD)",
                                          "x": [*xs, end], "series": series}
    return charts
