"""Report queries over the ClickHouse rollups (cost_hourly, activity_daily) and ledger tables.

Reports read rollups only; the FOCUS export and the correction writer read priced_events because they need
event-level columns (price-book version per row, the event's own quantities) — see docs/analytics.md.
"""
