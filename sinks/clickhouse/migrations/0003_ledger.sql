-- Alerts, decisions, budget snapshots, invoices, allocations and reprice corrections.
-- Each table dedupes on its natural id (ReplacingMergeTree, version = the time column); report queries use FINAL.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id     String,
    fired_at     DateTime64(3, 'UTC'),
    kind         LowCardinality(String) COMMENT 'budget_threshold | reconcile_drift | ...',
    budget_id    String,
    scope_kind   LowCardinality(String),
    scope_value  String,
    team         LowCardinality(String),
    period       LowCardinality(String),
    window_id    String,
    threshold    UInt16,
    spent        Int64,
    limit_nanos  Int64,
    mode         LowCardinality(String),
    action       LowCardinality(String),
    message      String
)
ENGINE = ReplacingMergeTree(fired_at)
PARTITION BY toYYYYMM(fired_at)
ORDER BY (team, alert_id);

CREATE TABLE IF NOT EXISTS {db}.decisions
(
    decision_id     String,
    decided_at      DateTime64(3, 'UTC'),
    budget_id       String,
    scope_kind      LowCardinality(String),
    scope_value     String,
    team            LowCardinality(String),
    use_case        LowCardinality(String),
    model           LowCardinality(String),
    decision        LowCardinality(String),
    reason          String,
    suggested_model String,
    window_id       String
)
ENGINE = ReplacingMergeTree(decided_at)
PARTITION BY toYYYYMM(decided_at)
ORDER BY (team, decision_id);

CREATE TABLE IF NOT EXISTS {db}.budget_snapshots
(
    snapshot_at  DateTime64(3, 'UTC'),
    budget_id    String,
    scope_kind   LowCardinality(String),
    scope_value  String,
    team         LowCardinality(String),
    period       LowCardinality(String),
    window_id    String,
    limit_nanos  Int64,
    spent_nanos  Int64,
    held_nanos   Int64,
    mode         LowCardinality(String)
)
ENGINE = ReplacingMergeTree(snapshot_at)
ORDER BY (budget_id, window_id);

CREATE TABLE IF NOT EXISTS {db}.invoices
(
    provider     LowCardinality(String),
    invoice_id   String,
    line_no      UInt32,
    day          Date,
    model        LowCardinality(String),
    quantity     String,
    unit         String,
    amount       Int64 COMMENT 'invoiced nano-USD',
    currency     LowCardinality(String),
    source_file  String,
    imported_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(imported_at)
PARTITION BY toYYYYMM(day)
ORDER BY (provider, invoice_id, line_no);

CREATE TABLE IF NOT EXISTS {db}.allocations
(
    run_id           String,
    month            Date,
    chargeback_model LowCardinality(String),
    cost_center      LowCardinality(String),
    team             LowCardinality(String),
    environment      LowCardinality(String),
    mode             LowCardinality(String) COMMENT 'chargeback | showback',
    direct           Int64,
    shared           Int64,
    markup           Int64,
    amount           Int64,
    shared_key       LowCardinality(String),
    generated_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(generated_at)
ORDER BY (month, chargeback_model, cost_center, team, environment);

-- Reprice corrections: one row per changed event and run. The run header is the audit record (who, when, which
-- price-book versions). Rows also feed cost_hourly (correction = 1) at the event's own hour.
CREATE TABLE IF NOT EXISTS {db}.reprice_runs
(
    run_id        String,
    applied_at    DateTime64(3, 'UTC'),
    applied_by    String,
    new_version   String,
    old_versions  Array(String),
    range_start   DateTime64(3, 'UTC'),
    range_end     DateTime64(3, 'UTC'),
    events        Int64,
    changed       Int64,
    delta_cost    Int64,
    note          String
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY run_id;

CREATE TABLE IF NOT EXISTS {db}.cost_corrections
(
    run_id                String,
    event_id              String,
    event_time            DateTime64(3, 'UTC'),
    corrected_at          DateTime64(3, 'UTC'),
    corrected_by          String,
    old_version           LowCardinality(String),
    new_version           LowCardinality(String),
    source                LowCardinality(String),
    provider              LowCardinality(String),
    model                 LowCardinality(String),
    team                  LowCardinality(String),
    cost_center           LowCardinality(String),
    use_case              LowCardinality(String),
    environment           LowCardinality(String),
    workload_type         LowCardinality(String),
    fully_tagged          UInt8,
    old_cost              Int64,
    new_cost              Int64,
    delta_list_cost       Int64,
    delta_contracted_cost Int64,
    delta_cost            Int64
)
ENGINE = ReplacingMergeTree(corrected_at)
PARTITION BY toYYYYMM(corrected_at)
ORDER BY (run_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.cost_corrections_mv TO {db}.cost_hourly AS
SELECT
    toDateTime(toStartOfHour(event_time), 'UTC') AS hour,
    team, use_case, model, cost_center, environment, provider, workload_type,
    toUInt8(source IN ('gateway', 'litellm')) AS paved,
    fully_tagged,
    toUInt8(1) AS correction,
    toInt64(0) AS events, toInt64(0) AS requests, toInt64(0) AS input_tokens, toInt64(0) AS output_tokens,
    toInt64(0) AS cached_input_tokens, toInt64(0) AS cache_write_tokens, toInt64(0) AS reasoning_tokens,
    0. AS gpu_seconds, 0. AS gpu_util_seconds, 0. AS gpu_busy_seconds,
    sum(delta_list_cost) AS list_cost,
    sum(delta_contracted_cost) AS contracted_cost,
    sum(delta_cost) AS cost,
    toInt64(0) AS unpriced_cost
FROM {db}.cost_corrections
GROUP BY hour, team, use_case, model, cost_center, environment, provider, workload_type, paved, fully_tagged
