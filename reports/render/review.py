"""The monthly chargeback review as HTML and CSV.

Cents: the statement per cost center is `statement_cents` of the exact nano-USD amounts (sums exactly to the
total in cents); each cost center's cents are then split over its lines the same way, so lines, cost centers and
the total agree to the cent in every file.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from typing import NamedTuple

from reports.render import charts
from reports.render.html import bar, card, esc, page, section, table
from reports.render.residuals import residual_section
from reports.review import ReviewData
from spendstream.chargeback import Statement, budget_variance, statement_cents
from spendstream.forecast import pct, unit_cost
from spendstream.money import cents

__all__ = ["CentLines", "cent_lines", "metrics", "statement_csv", "lines_csv", "metrics_csv", "review_html",
           "variance_by_team"]

_DESCRIBE = {
    "pool": "Central pool: the platform budget pays; every team sees its consumption (showback only).",
    "proportional": "Proportional: direct and shared cost split by token volume.",
    "real-cost": "Real cost plus markup: each line pays its direct cost, its share of platform cost and the markup.",
    "budget": "Upfront budget per use case: budgeted use cases pay their budget; the central pool books the variance.",
}


class CentLines(NamedTuple):
    by_cc: dict[str, int]  # cost center -> cents
    by_cc_mode: dict[tuple[str, str], int]  # (cost center, mode) -> cents
    lines: list[int]  # cents per statement line, in statement order
    total: int


def _c(cents_: int) -> str:
    sign = "-" if cents_ < 0 else ""
    return f"{sign}{abs(cents_) // 100}.{abs(cents_) % 100:02d}"


def _cd(cents_: int, currency: str = "USD") -> str:
    sign = "-" if cents_ < 0 else ""
    if currency != "USD":
        return f"{sign}{abs(cents_) // 100:,}.{abs(cents_) % 100:02d} {currency}"
    return f"{sign}${abs(cents_) // 100:,}.{abs(cents_) % 100:02d}"


def cent_lines(st: Statement) -> CentLines:
    """Nested cent statement: cost centers first, then their lines; every level sums to the total cents."""
    cc = st.by_cost_center()
    cc_cents = statement_cents(cc)
    members: dict[str, list[int]] = defaultdict(list)
    for i, ln in enumerate(st.lines):
        members[ln.cost_center].append(i)
    lines = [0] * len(st.lines)
    for name, idx in members.items():
        for i, c in statement_cents({i: st.lines[i].amount for i in idx}, cc_cents[name]).items():
            lines[i] = c
    by_mode: dict[tuple[str, str], int] = defaultdict(int)
    for ln, c in zip(st.lines, lines):
        by_mode[(ln.cost_center, ln.mode)] += c
    return CentLines(cc_cents, dict(by_mode), lines, sum(cc_cents.values()))


def metrics(d: ReviewData) -> list[tuple[str, str]]:
    """The five review metrics (+ context) as (name, decimal string)."""
    idle = "—" if not d.gpu_util_seconds else f"{100 * (1 - d.gpu_busy_seconds / d.gpu_util_seconds):.1f}"
    m = [("gpu_idle_pct", idle),
         ("gpu_seconds_reporting_utilization_pct", "—" if not d.gpu_seconds else f"{100 * d.gpu_util_seconds / d.gpu_seconds:.1f}"),
         ("paved_road_pct", pct(d.paved, d.total)), ("unallocated_pct", pct(d.unallocated, d.total)),
         ("tag_coverage_pct", pct(d.tagged, d.total))]
    for month, cost, tokens in d.token_trend:
        u = unit_cost(cost, tokens, 1_000)
        m.append((f"cost_per_1k_tokens_{d.currency.lower()}_{month}", "" if u is None else f"{u / 1e9:.6f}"))
    return m


def _csv(header: tuple[str, ...], body: list[tuple]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(body)
    return buf.getvalue()


def statement_csv(st: Statement, cl: CentLines, currency: str = "USD") -> str:
    rows = [(cc, _c(cl.by_cc_mode.get((cc, "chargeback"), 0)), _c(cl.by_cc_mode.get((cc, "showback"), 0)), _c(c))
            for cc, c in sorted(cl.by_cc.items())]
    rows.append(("TOTAL", _c(sum(v for (_, m), v in cl.by_cc_mode.items() if m == "chargeback")),
                 _c(sum(v for (_, m), v in cl.by_cc_mode.items() if m == "showback")), _c(cl.total)))
    cur = currency.lower()
    return _csv(("cost_center", f"chargeback_{cur}", f"showback_{cur}", f"total_{cur}"), rows)


def lines_csv(st: Statement, cl: CentLines, currency: str = "USD") -> str:
    """Per line: exact nano-unit components (of the report currency) and the line's cents (which sum to the
    statement total)."""
    return _csv(("cost_center", "team", "use_case", "environment", "mode", "direct_nanos", "shared_nanos",
                 "markup_nanos", "amount_nanos", f"amount_{currency.lower()}"),
                [(*ln[:5], ln.direct, ln.shared, ln.markup, ln.amount, _c(c)) for ln, c in zip(st.lines, cl.lines)])


def metrics_csv(d: ReviewData, variance: list[tuple[str, int, int, int]]) -> str:
    rows = [(k, "", v) for k, v in metrics(d)]
    rows += [(f"budget_variance_{d.currency.lower()}", team, _c(cents(v))) for team, budget, _, v in variance if budget]
    return _csv(("metric", "item", "value"), rows)


def review_html(d: ReviewData, st: Statement, cl: CentLines, variance: list[tuple[str, int, int, int]],
                shared: dict[str, int]) -> str:
    m = dict(metrics(d))
    _cd_ = lambda c: _cd(c, d.currency)  # noqa: E731
    sym = "$" if d.currency == "USD" else d.currency + " "
    trend = [(mo, unit_cost(c, t, 1_000)) for mo, c, t in d.token_trend]
    cards = "".join((
        card("Total allocated", _cd_(cl.total), f"{esc(st.model)} model"),
        card("GPU idle", f"{m['gpu_idle_pct']}%" if m["gpu_idle_pct"] != "—" else "—",
             f"{m['gpu_seconds_reporting_utilization_pct']}% of GPU time reports utilisation"),
        card(f"{sym.strip()} / 1k tokens", f"{sym}{trend[-1][1] / 1e9:.6f}" if trend[-1][1] is not None else "—",
             "token-priced work, this month" + (f" (prev. {sym}{trend[-2][1] / 1e9:.6f})" if trend[-2][1] else "")),
        card("Paved road", f"{m['paved_road_pct']}%", "spend through gateway / LiteLLM"),
        card("Unallocated", f"{m['unallocated_pct']}%", f"tag coverage {m['tag_coverage_pct']}%"),
    ))
    top = max(cl.by_cc.values(), default=0)
    stmt = table(("cost center", "chargeback", "showback", "total", ""),
                 [(cc, _cd_(cl.by_cc_mode.get((cc, "chargeback"), 0)), _cd_(cl.by_cc_mode.get((cc, "showback"), 0)),
                   _cd_(c), bar(c, top)) for cc, c in sorted(cl.by_cc.items(), key=lambda kv: -kv[1])],
                 num=(1, 2, 3), raw=(4,),
                 total=("Total", _cd_(sum(v for (_, mo), v in cl.by_cc_mode.items() if mo == "chargeback")),
                        _cd_(sum(v for (_, mo), v in cl.by_cc_mode.items() if mo == "showback")), _cd_(cl.total), ""))
    detail = table(("cost center", "team", "use case", "env", "mode", "direct", "shared", "markup", "amount"),
                   [(ln.cost_center, ln.team, ln.use_case, ln.environment, ln.mode, _cd_(cents(ln.direct)),
                     _cd_(cents(ln.shared)), _cd_(cents(ln.markup)), _cd_(c)) for ln, c in zip(st.lines, cl.lines)],
                   num=(5, 6, 7, 8))
    var = table(("team", "budget", "actual", "variance", "used"),
                [(t, _cd_(cents(b)), _cd_(cents(a)), _cd_(cents(v)), f"{pct(a, b)}%")
                 for t, b, a, v in variance if b], num=(1, 2, 3, 4)) if any(b for _, b, _, _ in variance) else \
        "<p class='muted'>No monthly team budgets given (--budgets).</p>"
    shared_txt = ", ".join(f"{esc(k)} {_cd_(cents(v))}" for k, v in shared.items()) or "none"
    body = [
        f"<div class='cards'>{cards}</div>",
        section("Statement by cost center", f"<p>{esc(_DESCRIBE[st.model])} Hybrid policy: production and "
                f"staging are charged back; research, development and unallocated spend are shown back. Shared "
                f"platform cost ({shared_txt}) prorated by <b>{esc(st.shared_key)}</b>.</p>", stmt,
                "".join(f"<p class='muted'>{esc(n)}</p>" for n in st.notes)),
        section(f"{sym.strip()} / 1k tokens, monthly", f"<img alt='unit cost trend' src='{charts.line_trend([t[0] for t in trend], [t[1] and t[1] / 1e9 for t in trend], sym.strip() + ' / 1k tokens')}'>"),
        section("Budget variance by team", var),
        residual_section(d),
        section("Statement lines", detail),
    ]
    fx_note = "" if d.currency == "USD" else (
        f"Amounts in {d.currency}: each usage line converted from USD per UTC day at that day's rate (half-even to "
        "the nano, once per line and day), then summed; budgets, shared costs and residuals at the rate of the "
        "month's first day. ")
    foot = (fx_note + "Line amounts are exact nano-units apportioned with the largest-remainder rule, then cents: the statement "
            "total is the exact total rounded half-even to the cent, and every column sums to it. GPU idle % covers "
            "events reporting attributes['gpu_utilization'] in [0, 1].")
    return page(f"AI spend review {d.month}: {st.model}", f"{d.start:%d %b %Y} – {d.end:%d %b %Y} (UTC, end "
                f"exclusive){' · ' + d.fiscal if d.fiscal else ''} · monthly chargeback review", body, esc(foot))


def variance_by_team(d: ReviewData, team_budgets: dict[str, int]) -> list[tuple[str, int, int, int]]:
    return budget_variance(d.team_actual, team_budgets)
