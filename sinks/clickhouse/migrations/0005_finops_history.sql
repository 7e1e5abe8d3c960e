-- [finops] Reconciliation residual history; budget history in budget_snapshots.
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

-- budget_snapshots (0003) becomes the one budget history: a 'close' row per budget x window at period close
-- (changed_at = epoch, so a re-run of the close replaces it) and a 'create' | 'update' | 'delete' row on every
-- budget write through the admin API (changed_at = when, changed_by = the API key's name, before / after = the
-- budget as JSON, '' when absent). New columns may join the end of the sorting key in the ALTER that adds them.
ALTER TABLE {db}.budget_snapshots
    ADD COLUMN IF NOT EXISTS kind LowCardinality(String),
    ADD COLUMN IF NOT EXISTS changed_at DateTime64(3, 'UTC'),
    ADD COLUMN IF NOT EXISTS changed_by String,
    ADD COLUMN IF NOT EXISTS before String,
    ADD COLUMN IF NOT EXISTS after String,
    MODIFY ORDER BY (budget_id, window_id, kind, changed_at)
;

-- month_closes: a billing month locked once reviewed and exported (who, when). After the close, an event of that
-- month ingested later is exported as a FOCUS Correction in the month it arrived, never as a changed figure.
CREATE TABLE IF NOT EXISTS {db}.month_closes
(
    month      Date,
    closed_at  DateTime64(3, 'UTC'),
    closed_by  String,
    note       String
)
ENGINE = MergeTree
ORDER BY (month, closed_at)
