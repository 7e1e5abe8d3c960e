-- Carry-over ledger: what each carry-over budget brought into a period from the one before (written once per
-- budget and period by the worker's budget watcher). Dedupes on (budget_id, to_window).
CREATE TABLE IF NOT EXISTS {db}.carry_over
(
    budget_id       String,
    scope_kind      LowCardinality(String),
    scope_value     String,
    team            LowCardinality(String),
    from_window     String COMMENT 'the period the unused budget came from, e.g. m:202610',
    to_window       String COMMENT 'the period it was added to, e.g. m:202611',
    limit_nanos     Int64,
    previous_spent  Int64,
    carried_nanos   Int64,
    cap_pct         UInt8,
    recorded_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (budget_id, to_window);
