"""Write the report files — weekly digest per team, monthly review — for the CLI and for the scheduled runs.

One home for what a report run writes: digest-WEEK-TEAM.html/.md/.csv; review-MONTH-MODEL.html and its
statement / lines / metrics / residuals CSVs, plus the allocation stored in ClickHouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from reports.digest import TeamDigest, digest_teams, team_digest
from reports.review import ReviewData, review_data
from spendstream.budget_windows import fiscal_quarter_label
from spendstream.chargeback import build_statement
from spendstream.fx import Converter
from spendstream.windows import month_bounds

__all__ = ["write_weekly", "write_review", "ReviewRun"]


def write_weekly(client: Client, db: str, week: str, out: Path, budgets: list,
                 teams: list[str] | None = None, money: Converter | None = None, *,
                 fiscal_start_month: int = 1) -> list[tuple[TeamDigest, Path]]:
    """Write each team's digest of `week` (digest-WEEK-TEAM[-CUR].*, in `money`'s currency, default USD);
    returns (digest, html path) per team. Each digest names its fiscal quarter (`fiscal_start_month`)."""
    from reports.render.digest import digest_csv, digest_html, digest_markdown

    out.mkdir(parents=True, exist_ok=True)
    done = []
    for t in teams or digest_teams(client, db, week):
        d = team_digest(client, db, t, week, budgets, money)
        d.fiscal = fiscal_quarter_label(int(d.start.timestamp() * 1000), fiscal_start_month)
        stem = out / (f"digest-{week}-{t}" + ("" if d.currency == "USD" else f"-{d.currency}"))
        stem.with_suffix(".html").write_text(digest_html(d))
        stem.with_suffix(".md").write_text(digest_markdown(d))
        stem.with_suffix(".csv").write_text(digest_csv(d))
        done.append((d, stem.with_suffix(".html")))
    return done


@dataclass
class ReviewRun:
    data: ReviewData
    statement: Any
    cents: Any
    variance: list[tuple[str, int, int, int]]
    html: Path


def write_review(client: Client, db: str, month: str, out: Path, *, model: str = "real-cost",
                 shared: dict[str, int] | None = None, shared_key: str = "spend", markup_bp: int = 0,
                 use_case_budgets: dict[str, int] | None = None, team_budgets: dict[str, int] | None = None,
                 now: datetime, money: Converter | None = None, fiscal_start_month: int = 1) -> ReviewRun:
    """Write the monthly review files and record the allocation. Team budgets default to those in effect for the
    month in the budget history. Raises ValueError on a bad model / key (from the chargeback core).

    `money` (default USD): the review in another currency — usage converted per line and day (reports.review);
    the amounts given here (shared costs, budgets: nano-USD) at the rate of the month's first day. Files are named
    review-MONTH-MODEL-CUR.*; the allocation of record (table allocations) is written by USD runs only."""
    from reports.render.residuals import residuals_csv
    from reports.render.review import cent_lines, lines_csv, metrics_csv, review_html, statement_csv, variance_by_team
    from sinks.clickhouse.budget_history import team_month_budgets

    shared = shared or {}
    if team_budgets is None:
        team_budgets = team_month_budgets(client, db, month)
    money = money or Converter()
    d = review_data(client, db, month, money)
    d.fiscal = fiscal_quarter_label(int(d.start.timestamp() * 1000), fiscal_start_month)
    first = month_bounds(month)[0].date()
    conv = lambda amounts: {k: money(v, first) for k, v in (amounts or {}).items()}  # noqa: E731
    shared, team_budgets = conv(shared), conv(team_budgets)
    st = build_statement(model, d.usage, shared, shared_key=shared_key, markup_bp=markup_bp,
                         budgets=conv(use_case_budgets))
    cl = cent_lines(st)
    variance = variance_by_team(d, team_budgets)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"review-{month}-{model}" + ("" if money.currency == "USD" else f"-{money.currency}")
    (out / f"{stem}.html").write_text(review_html(d, st, cl, variance, shared))
    (out / f"{stem}-statement.csv").write_text(statement_csv(st, cl, money.currency))
    (out / f"{stem}-lines.csv").write_text(lines_csv(st, cl, money.currency))
    (out / f"{stem}-metrics.csv").write_text(metrics_csv(d, variance))
    (out / f"{stem}-residuals.csv").write_text(residuals_csv(d))
    if money.currency != "USD":  # the allocation of record stays in USD
        return ReviewRun(d, st, cl, variance, out / f"{stem}.html")
    client.insert(f"{db}.allocations",
                  [[f"{month}:{st.model}", month_bounds(month)[0].date(), st.model, ln.cost_center, ln.team,
                    ln.environment, ln.mode, ln.direct, ln.shared, ln.markup, ln.amount, st.shared_key, now]
                   for ln in st.lines],
                  column_names=["run_id", "month", "chargeback_model", "cost_center", "team", "environment", "mode",
                                "direct", "shared", "markup", "amount", "shared_key", "generated_at"])
    return ReviewRun(d, st, cl, variance, out / f"{stem}.html")
