"""The carry-over ledger on the real ClickHouse engine: migration 0004 creates it, the writer's ledger path fills
it, a re-insert of the same (budget, period) dedupes."""

from __future__ import annotations

import pytest

from schemas.models import Budget, BudgetScope
from sinks.clickhouse.carry_rows import CARRY_COLUMNS, carry_row
from sinks.clickhouse.writer import ClickHouseWriter

pytestmark = pytest.mark.integration

USD = 1_000_000_000


def test_carried_amounts_are_recorded_with_the_period_they_came_from(clickhouse):
    b = Budget(id="pay", scope=BudgetScope(kind="team", value="payments"), limit_usd="10", carry_over=True,
               carry_over_cap_pct=50)
    writer = ClickHouseWriter(clickhouse.client, clickhouse.database)
    row = carry_row(b, "m:202610", "m:202611", 4 * USD, 5 * USD, 1_794_800_000_000)
    writer.add_ledger("carry_over", CARRY_COLUMNS, [row])
    writer.flush()
    writer.add_ledger("carry_over", CARRY_COLUMNS, [row])  # a second worker records the same period
    writer.flush()
    got = clickhouse.client.query(
        f"SELECT budget_id, team, from_window, to_window, carried_nanos, previous_spent, cap_pct "
        f"FROM {clickhouse.database}.carry_over FINAL").result_rows
    assert got == [("pay", "payments", "m:202610", "m:202611", 5 * USD, 4 * USD, 50)]
