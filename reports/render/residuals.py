"""The monthly review's reconciliation residual: the trend per provider x month (invoice - metered, latest run)
and this month's residual allocated to teams as separate `reconciliation residual` lines."""

from __future__ import annotations

from reports.render.html import esc, money, section, table
from reports.review import ReviewData
from spendstream.money import format_usd

__all__ = ["residual_section", "residuals_csv", "RESIDUAL_LINE"]

RESIDUAL_LINE = "reconciliation residual"


def residual_section(d: ReviewData) -> str:
    """HTML section; says so when no reconciliation was run for the months shown."""
    if not d.residual_trend and not d.residual_lines:
        return section("Reconciliation residual", "<p class='muted'>No provider export reconciled for these months "
                       "(spendstream reconcile).</p>")
    usd = lambda n, places=2: money(n, places, d.currency)  # noqa: E731 - the report's currency
    trend = table(("month", "provider", "source", "invoiced", "metered", "residual"),
                  [(t.month, t.provider, t.source, usd(t.invoiced), usd(t.metered), usd(t.residual, 4))
                   for t in d.residual_trend], num=(3, 4, 5))
    lines = table(("line", "provider", "team", "amount"),
                  [(RESIDUAL_LINE, p, t, usd(a, 4)) for p, t, a in d.residual_lines], num=(3,),
                  total=("Total", "", "", usd(sum(a for _, _, a in d.residual_lines), 4)))
    return section("Reconciliation residual (invoice − metered)",
                   "<p>Trend of the latest reconcile run per provider and month.</p>", trend,
                   f"<p>{esc(d.month)}: allocated to teams by their share of the provider's metered spend, shown "
                   "apart from their usage.</p>", lines)


def residuals_csv(d: ReviewData) -> str:
    """kind,month,provider,team,source,invoiced_<cur>,metered_<cur>,residual_<cur> — exact 9-decimal strings of
    the report's currency."""
    cur = d.currency.lower()
    out = [f"kind,month,provider,team,source,invoiced_{cur},metered_{cur},residual_{cur}"]
    out += [f"trend,{t.month},{t.provider},,{t.source},{format_usd(t.invoiced)},{format_usd(t.metered)},"
            f"{format_usd(t.residual)}" for t in d.residual_trend]
    out += [f"{RESIDUAL_LINE},{d.month},{p},{t},,,,{format_usd(a)}" for p, t, a in d.residual_lines]
    return "\n".join(out) + "\n"
