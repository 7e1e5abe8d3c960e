"""The spend dashboard's SQL (deploy/grafana/dashboards/spend.json) runs on the real ClickHouse engine against the
migrated schema, and its per-team figures equal independent sums of the rows inserted."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from sinks.clickhouse.priced_rows import PRICED_COLUMNS
from tests.integration.test_reports_figures import generate

pytestmark = pytest.mark.integration

SPEND = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "spend.json"
RANGE = "hour >= toDateTime('2026-10-01 00:00:00', 'UTC') AND hour < toDateTime('2026-12-01 00:00:00', 'UTC')"


def panel_sql(db: str) -> dict[str, str]:
    """title -> SQL with Grafana's $__timeFilter macro expanded (as the plugin does, for Oct-Nov 2026)."""
    out = {}
    for p in json.loads(SPEND.read_text())["panels"]:
        sql = p["targets"][0]["rawSql"]
        assert "$__timeFilter(hour)" in sql and "spendstream." in sql, p["title"]
        out[p["title"]] = sql.replace("$__timeFilter(hour)", RANGE).replace("spendstream.", f"{db}.")
    return out


def test_every_spend_panel_query_runs_and_team_spend_equals_the_rows(clickhouse):
    rows = generate(3_000, seed=3)
    clickhouse.client.insert(f"{clickhouse.database}.priced_events", [[r[c] for c in PRICED_COLUMNS] for r in rows],
                             column_names=PRICED_COLUMNS)
    queries = panel_sql(clickhouse.database)
    results = {title: clickhouse.client.query(sql).result_rows for title, sql in queries.items()}
    assert all(results.values()), [t for t, r in results.items() if not r]

    per_team: dict[str, int] = defaultdict(int)
    for r in rows:
        per_team[r["team"]] += r["cost"]
    got: dict[str, float] = defaultdict(float)
    for _time, team, usd in results["Spend per team (USD per hour)"]:
        got[team] += usd
    assert set(got) == set(per_team)
    for team, nanos in per_team.items():
        assert abs(got[team] - nanos / 1e9) < 1e-6, team  # the panel shows float USD: equal to display precision
    models = {m: usd for m, usd, _ in results["Spend per model (USD, range)"]}
    assert abs(sum(models.values()) - sum(per_team.values()) / 1e9) < 1e-6 or len(models) == 20
