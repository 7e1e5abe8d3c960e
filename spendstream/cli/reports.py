"""`spendstream digest weekly | review monthly | export focus | export check`: the analytics CLI (reconcile:
spendstream/cli/reconcile.py).

Entry point only: builds Settings and the ClickHouse client, calls the report queries (reports/), the pure
core (spendstream.chargeback / forecast / focus / reconcile) and the renderers (reports/render).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from spendstream.cli._common import clickhouse_client, console
from spendstream.errors import ConfigError
from spendstream.money import usd_to_nanos

__all__ = ["register"]

digest = typer.Typer(help="Weekly showback digest per team.", no_args_is_help=True)
review = typer.Typer(help="Monthly chargeback review.", no_args_is_help=True)
export = typer.Typer(help="Exports: FOCUS 1.2.", no_args_is_help=True)


def _budgets(path: Path | None):
    from spendstream.cli.budgets import load_budgets

    return load_budgets(path) if path else []


def _pairs(items: list[str], what: str) -> dict[str, int]:
    """NAME=USD pairs -> {name: nano-USD}. Raises ConfigError on a malformed pair."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, amount = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{what} must look like NAME=AMOUNT, not {item!r}")
        out[name.strip()] = out.get(name.strip(), 0) + usd_to_nanos(amount)
    return out


@digest.command("weekly")
def digest_weekly(
    week: str = typer.Option(..., help="ISO week, e.g. 2026-W47"),
    team: list[str] = typer.Option([], help="Only these teams (default: every team with spend)"),
    out: Path = typer.Option(Path("reports"), help="Output directory"),
    budgets: Path | None = typer.Option(None, exists=True, dir_okay=False, help="budgets YAML for the forecast"),
) -> None:
    """Write digest-WEEK-TEAM.html/.md/.csv per team (HTML self-contained, charts embedded)."""
    from reports.render.digest import digest_csv, digest_html, digest_markdown
    from reports.digest import digest_teams, team_digest

    client, db = clickhouse_client()
    bl = _budgets(budgets)
    out.mkdir(parents=True, exist_ok=True)
    for t in team or digest_teams(client, db, week):
        d = team_digest(client, db, t, week, bl)
        stem = out / f"digest-{week}-{t}"
        stem.with_suffix(".html").write_text(digest_html(d))
        stem.with_suffix(".md").write_text(digest_markdown(d))
        stem.with_suffix(".csv").write_text(digest_csv(d))
        console.print(f"{t}: {stem}.html (.md, .csv)")


@review.command("monthly")
def review_monthly(
    month: str = typer.Option(..., help="Calendar month, e.g. 2026-11"),
    model: str = typer.Option("real-cost", help="pool | proportional | real-cost | budget"),
    shared_cost: list[str] = typer.Option([], "--shared-cost", help="Shared platform cost NAME=USD (repeat)"),
    shared_key: str = typer.Option("spend", help="Proration key of shared cost: spend | tokens | requests | even"),
    markup: str = typer.Option("0", help="Markup percent on chargeback lines (real-cost model)"),
    budgets: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                        help="budgets YAML: team budgets -> variance (default: the budget history), "
                                             "use-case budgets -> budget model"),
    budget: list[str] = typer.Option([], "--use-case-budget", help="Upfront use-case budget USE_CASE=USD (repeat)"),
    out: Path = typer.Option(Path("reports"), help="Output directory"),
) -> None:
    """Write review-MONTH-MODEL.html plus statement / lines / metrics / residuals CSVs; records the allocation in ClickHouse."""
    from reports.render.residuals import residuals_csv
    from reports.render.review import cent_lines, lines_csv, metrics_csv, review_html, statement_csv, variance_by_team
    from reports.review import review_data
    from spendstream.chargeback import build_statement

    client, db = clickhouse_client()
    bl = _budgets(budgets)
    monthly = [b for b in bl if b.period == "month"]
    if budgets:  # an explicit file wins; otherwise the budgets in effect for the month, from the budget history
        team_budgets = {b.scope.value: b.limit_nanos for b in monthly if b.scope.kind == "team"}
    else:
        from sinks.clickhouse.budget_history import team_month_budgets

        team_budgets = team_month_budgets(client, db, month)
    uc_budgets = {b.scope.value.split("/")[-1]: b.limit_nanos for b in monthly
                  if b.scope.kind in ("use_case", "team_use_case")}
    uc_budgets.update(_pairs(budget, "--use-case-budget"))
    shared = _pairs(shared_cost, "--shared-cost")
    markup_bp = usd_to_nanos(markup) // 10_000_000  # percent with up to 2 decimals -> basis points
    d = review_data(client, db, month)
    try:
        st = build_statement(model, d.usage, shared, shared_key=shared_key, markup_bp=markup_bp, budgets=uc_budgets)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    cl = cent_lines(st)
    variance = variance_by_team(d, team_budgets)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"review-{month}-{model}"
    (out / f"{stem}.html").write_text(review_html(d, st, cl, variance, shared))
    (out / f"{stem}-statement.csv").write_text(statement_csv(st, cl))
    (out / f"{stem}-lines.csv").write_text(lines_csv(st, cl))
    (out / f"{stem}-metrics.csv").write_text(metrics_csv(d, variance))
    (out / f"{stem}-residuals.csv").write_text(residuals_csv(d))
    _record_allocation(client, db, month, st)
    console.print(f"{model}: total {cl.total / 100:,.2f} USD over {len(cl.by_cc)} cost centers -> {out / stem}.html")


def _record_allocation(client, db: str, month: str, st) -> None:
    from spendstream.windows import month_bounds

    now = datetime.now(UTC)
    client.insert(f"{db}.allocations",
                  [[f"{month}:{st.model}", month_bounds(month)[0].date(), st.model, ln.cost_center, ln.team,
                    ln.environment, ln.mode, ln.direct, ln.shared, ln.markup, ln.amount, st.shared_key, now]
                   for ln in st.lines],
                  column_names=["run_id", "month", "chargeback_model", "cost_center", "team", "environment", "mode",
                                "direct", "shared", "markup", "amount", "shared_key", "generated_at"])


@export.command("focus")
def export_focus(
    month: str = typer.Option(..., help="Billing month, e.g. 2026-11"),
    out: Path = typer.Option(..., help="FILE.csv or FILE.parquet"),
    account_id: str = typer.Option("spendstream", help="BillingAccountId"),
    account_name: str = typer.Option("AI platform", help="BillingAccountName"),
    validate: bool = typer.Option(True, "--validate/--no-validate",
                                  help="Check every written row against the FOCUS 1.2 rules; exit 1 on a violation"),
) -> None:
    """FOCUS 1.2 rows: hourly usage of the month per priced component, reprice corrections booked in it and the
    month's reconciliation residuals (Adjustments). The written file is validated unless --no-validate."""
    from reports.focus_export import focus_rows
    from reports.focus_validate import validate_file
    from reports.render.focus_file import write_focus

    client, db = clickhouse_client()
    out.parent.mkdir(parents=True, exist_ok=True)
    n = write_focus(focus_rows(client, db, month, (account_id, account_name)), out)
    console.print(f"{n:,} FOCUS rows -> {out}")
    if validate:
        _report_violations(validate_file(out), out)


def _report_violations(bad: list, path: Path) -> None:
    """Print each violation (row, column, rule); exit 1 when there is any."""
    from rich.markup import escape

    for v in bad[:50]:
        console.print(f"[red]FOCUS[/red] {escape(str(v))}", soft_wrap=True)
    if bad:
        console.print(f"{len(bad):,} FOCUS rule violation(s) in {path}" + (" (first 50 shown)" if len(bad) > 50 else ""))
        raise typer.Exit(1)
    console.print("FOCUS 1.2 rules: every row conforms")


@export.command("check")
def export_check(path: Path = typer.Argument(..., exists=True, dir_okay=False, help="FOCUS .csv or .parquet")) -> None:
    """Validate any FOCUS 1.2 file (ours or a provider's) against the spec's rules; exit 1 naming row, column, rule."""
    from reports.focus_validate import validate_file

    _report_violations(validate_file(path), path)


def register(app: typer.Typer) -> None:
    app.add_typer(digest, name="digest")
    app.add_typer(review, name="review")
    app.add_typer(export, name="export")
