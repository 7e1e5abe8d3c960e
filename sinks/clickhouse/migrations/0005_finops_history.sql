-- [finops] Reconciliation residual history and budget change history.
-- reconciliation_residuals: one row per reconcile run x provider x month x the source's grain key (service for a
-- FOCUS file, project for the OpenAI costs API, model for the Anthropic cost report and the invoice CSV). Reports
-- read the latest run per (provider, month) — a re-run with fewer keys never leaves stale keys behind.
-- Money in nano-USD; residual = invoiced - metered (metered = contracted cost).
CREATE TABLE IF NOT EXISTS {db}.reconciliation_residuals
(
    reconciled_at DateTime64(3, 'UTC'),
    provider      LowCardinality(String),
    month         Date,
    source        LowCardinality(String) COMMENT 'invoice-csv | focus | openai-costs | anthropic-cost-report',
    grain         LowCardinality(String) COMMENT 'service | project | model',
    grain_key     String,
    invoice_id    String,
    source_file   String,
    invoiced      Int64,
    metered       Int64,
    residual      Int64
)
ENGINE = ReplacingMergeTree(reconciled_at)
ORDER BY (provider, month, reconciled_at, source, grain_key);

-- budget_changes: every budget write through the admin API (who, when, before, after as JSON; after empty on a
-- delete). budget_snapshots (0003) keeps one row per budget x closed window.
CREATE TABLE IF NOT EXISTS {db}.budget_changes
(
    changed_at   DateTime64(3, 'UTC'),
    budget_id    String,
    changed_by   String,
    action       LowCardinality(String) COMMENT 'create | update | delete',
    before       String,
    after        String
)
ENGINE = ReplacingMergeTree(changed_at)
ORDER BY (budget_id, changed_at)
