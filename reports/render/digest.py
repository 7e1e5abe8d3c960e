"""The weekly digest of one team as HTML (self-contained), Markdown and CSV.

CSV is long-format — team, week, section, item, metric, value — one figure per line, money as decimal strings of
the digest's currency (USD unless converted: metric names then end in _eur, ...) rounded half-even to the cent from
the exact nano-unit sum (unit costs to 1e-4).
"""

from __future__ import annotations

import csv
import io
from typing import Iterator

from reports.render import charts
from reports.render.html import bar, card, delta_badge, esc, money, page, section, table
from reports.digest import TeamDigest
from spendstream.forecast import change_pct, pct, unit_cost
from spendstream.money import format_usd

__all__ = ["digest_csv_rows", "digest_csv", "digest_markdown", "digest_html", "CSV_HEADER"]

CSV_HEADER = ("team", "week", "section", "item", "metric", "value")
_STATUS = {"on track": "ok", "at risk": "risk", "over budget": "over"}


def _money(n: int | None, places: int = 2) -> str:
    return "" if n is None else format_usd(n, places)


def _units(cost: int, requests: int, token_cost: int, tokens: int) -> tuple[int | None, int | None]:
    return unit_cost(cost, requests, 1_000), unit_cost(token_cost, tokens, 1_000_000)


def _usd_of(d: TeamDigest):
    """The digest's money formatter ($1.00, or 1.00 EUR)."""
    return lambda n, places=2: money(n, places, d.currency)


def digest_csv_rows(d: TeamDigest) -> Iterator[tuple[str, str, str, str]]:
    """(section, item, metric, value) for every figure of the digest; money metrics end in _usd (or the
    digest's currency code)."""
    suffix = "_" + d.currency.lower()
    for sec, item, metric, value in _csv_rows(d):
        yield sec, item, metric.replace("_usd", suffix) if metric.endswith("_usd") or "_usd_" in metric else metric, value


def _csv_rows(d: TeamDigest) -> Iterator[tuple[str, str, str, str]]:
    this = d.weekly[-1]
    per_req, per_tok = _units(d.cost, d.requests, this[4], d.tokens)
    yield from (("summary", "", m, v) for m, v in (
        ("cost_usd", _money(d.cost)), ("cost_last_week_usd", _money(d.cost_last)),
        ("change_pct", change_pct(d.cost, d.cost_last)), ("requests", str(d.requests)), ("tokens", str(d.tokens)),
        ("cost_per_1k_requests_usd", _money(per_req, 4)), ("cost_per_1m_tokens_usd", _money(per_tok, 4)),
        ("tag_coverage_pct", pct(d.tagged_cost, d.cost)),
        ("org_unallocated_pct", pct(d.org_unallocated, d.org_cost))))
    for day, cost in d.daily:
        yield "daily", day, "cost_usd", _money(cost)
    for wk, cost, req, tok, tcost in d.weekly:
        r, t = _units(cost, req, tcost, tok)
        yield from (("weekly", wk, "cost_usd", _money(cost)), ("weekly", wk, "cost_per_1k_requests_usd", _money(r, 4)),
                    ("weekly", wk, "cost_per_1m_tokens_usd", _money(t, 4)))
    for sec, items in (("use_case", d.use_cases), ("model", d.models)):
        for name, now, before in items:
            yield from ((sec, name, "cost_usd", _money(now)), (sec, name, "cost_last_week_usd", _money(before)))
    for kind, cost, n, cost_l, n_l in d.activities:
        yield from (("activity", kind, "cost_usd", _money(cost)), ("activity", kind, "activities", str(n)),
                    ("activity", kind, "cost_per_activity_usd", _money(unit_cost(cost, n, 1), 4)),
                    ("activity", kind, "cost_per_activity_last_week_usd", _money(unit_cost(cost_l, n_l, 1), 4)))
    for o in d.outlooks:
        yield from (("forecast", o.budget_id, "limit_usd", _money(o.limit)), ("forecast", o.budget_id, "spent_usd", _money(o.spent)),
                    ("forecast", o.budget_id, "forecast_usd", _money(o.forecast)), ("forecast", o.budget_id, "status", o.status))
    for fired, budget, kind, threshold, msg in d.alerts:
        yield "alert", fired, kind, f"{budget} {threshold}% {msg}".strip()


def digest_csv(d: TeamDigest) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for row in digest_csv_rows(d):
        w.writerow((d.team, d.week, *row))
    return buf.getvalue()


def digest_markdown(d: TeamDigest) -> str:
    usd = _usd_of(d)
    s = dict(((m, v) for sec, _, m, v in _csv_rows(d) if sec == "summary"))
    c = (lambda k: f"${s[k]}") if d.currency == "USD" else (lambda k: f"{s[k]} {d.currency}")  # noqa: E731
    out = [f"# {d.team} — AI spend, week {d.week}" + (f" ({d.fiscal})" if d.fiscal else ""), "",
           f"**{c('cost_usd')}** this week ({s['change_pct']}% vs {c('cost_last_week_usd')} last week). "
           f"{c('cost_per_1k_requests_usd')} per 1k requests, {c('cost_per_1m_tokens_usd')} per 1M tokens. "
           f"Tag coverage {s['tag_coverage_pct']}%; org-wide unallocated {s['org_unallocated_pct']}%.", "",
           "## Top use cases", "", "| use case | this week | last week | change |", "|---|--:|--:|--:|"]
    out += [f"| {n} | {usd(a)} | {usd(b)} | {change_pct(a, b)} |" for n, a, b in d.use_cases]
    out += ["", "## Top models", "", "| model | this week | last week | change |", "|---|--:|--:|--:|"]
    out += [f"| {n} | {usd(a)} | {usd(b)} | {change_pct(a, b)} |" for n, a, b in d.models]
    if d.activities:
        out += ["", "## Cost per business activity", "", "| activity | count | cost | per activity | last week |",
                "|---|--:|--:|--:|--:|"]
        out += [f"| {k} | {n} | {usd(c)} | {usd(unit_cost(c, n, 1) or 0, 4)} | {usd(unit_cost(cl, nl, 1) or 0, 4)} |"
                for k, c, n, cl, nl in d.activities]
    out += ["", "## Forecast to period end", ""]
    out += [f"- {o.budget_id}: spent {usd(o.spent)}, forecast {usd(o.forecast)} of {usd(o.limit)} "
            f"({o.forecast_pct}%) — **{o.status}**" for o in d.outlooks] or ["- no budget for this team"]
    out += ["", "## Alerts fired this week", ""]
    out += [f"- {f} {b} {k} {t}%: {m}" for f, b, k, t, m in d.alerts] or ["- none"]
    return "\n".join(out) + "\n"


def _split_table(items: list[tuple[str, int, int]], label: str, usd) -> str:
    top = max((a for _, a, _ in items), default=0)
    return table((label, "this week", "", "last week", "change"),
                 [(n, usd(a), bar(a, top), usd(b), delta_badge(change_pct(a, b))) for n, a, b in items[:8]],
                 num=(1, 3, 4), raw=(2, 4))


def digest_html(d: TeamDigest) -> str:
    usd = _usd_of(d)
    this = d.weekly[-1]
    per_req, per_tok = _units(d.cost, d.requests, this[4], d.tokens)
    last = d.weekly[-2] if len(d.weekly) > 1 else this
    last_req, last_tok = _units(last[1], last[2], last[4], last[3])
    main = d.outlooks[0] if d.outlooks else None
    cards = "".join((
        card("Spend this week", usd(d.cost), f"{delta_badge(change_pct(d.cost, d.cost_last))} vs {esc(usd(d.cost_last))}"),
        card("Month-end forecast", f"{main.forecast_pct}% of budget" if main else "no budget",
             f"<span class='pill {_STATUS[main.status]}'>{esc(main.status)}</span> {esc(usd(main.forecast))} of "
             f"{esc(usd(main.limit))}" if main else "set one in budgets.yaml"),
        card("Per 1k requests", usd(per_req, 4) if per_req is not None else "—",
             delta_badge(change_pct(per_req or 0, last_req or 0)) + " vs last week"),
        card("Per 1M tokens", usd(per_tok, 4) if per_tok is not None else "—",
             delta_badge(change_pct(per_tok or 0, last_tok or 0)) + " vs last week"),
        card("Tag coverage", f"{pct(d.tagged_cost, d.cost)}%", f"org unallocated {pct(d.org_unallocated, d.org_cost)}%"),
    ))
    labels = [w for w, *_ in d.weekly]
    units = [_units(c, r, tc, t) for _, c, r, t, tc in d.weekly]
    acts = table(("activity", "count", "cost", "per activity", "last week"),
                 [(k, f"{n:,}", usd(c), usd(unit_cost(c, n, 1) or 0, 4), usd(unit_cost(cl, nl, 1) or 0, 4))
                  for k, c, n, cl, nl in d.activities], num=(1, 2, 3, 4)) if d.activities else \
        "<p class='muted'>No events carried activity_type / activity_id this week.</p>"
    outl = table(("budget", "spent", "forecast", "limit", "forecast %", "status"),
                 [(o.budget_id, usd(o.spent), usd(o.forecast), usd(o.limit), f"{o.forecast_pct}%",
                   f"<span class='pill {_STATUS[o.status]}'>{esc(o.status)}</span>") for o in d.outlooks],
                 num=(1, 2, 3, 4), raw=(5,)) if d.outlooks else "<p class='muted'>No budget covers this team.</p>"
    alerts = table(("fired (UTC)", "budget", "kind", "threshold", "message"),
                   [(f, b, k, f"{t}%", m) for f, b, k, t, m in d.alerts]) if d.alerts else \
        "<p class='muted'>No alerts fired this week.</p>"
    body = [
        f"<div class='cards'>{cards}</div>",
        section("Daily spend, last 4 weeks (this week in blue)", f"<img alt='daily spend' src='{charts.daily_trend(d.daily)}'>"),
        section("Unit cost trend", f"<img alt='unit cost' src='{charts.unit_trend(labels, [u[0] and u[0] / 1e9 for u in units], [u[1] and u[1] / 1e9 for u in units])}'>"),
        section("Top use cases", _split_table(d.use_cases, "use case", usd)),
        section("Top models", _split_table(d.models, "model", usd)),
        section("Cost per business activity", acts),
        section("Forecast to period end", outl),
        section("Alerts fired", alerts),
    ]
    fx_note = "" if d.currency == "USD" else (
        f"Amounts in {d.currency}: each rollup row converted from USD per UTC day at that day's rate (half-even to "
        "the nano), then summed; budget limits at the rate of their period's first day. ")
    foot = (fx_note + "Figures are exact sums of integer nano-units, shown rounded half-even to the cent. Cost per 1M tokens counts "
            "token-priced work only (GPU training and notebooks are billed by the hour). Forecast: month-to-date "
            "plus last 7 days' run rate to the period end. Weeks are ISO weeks, UTC.")
    return page(f"{d.team}: AI spend, week {d.week}",
                f"{d.start:%a %d %b %Y} – {(d.end):%a %d %b %Y} (UTC, end exclusive)"
                f"{' · ' + d.fiscal if d.fiscal else ''} · showback digest", body, esc(foot))
