-- [metering] One row per answered /v1/check: what was asked, what was decided and why. Denied calls never become
-- usage events (a call that never left has no usage); they are counted here and in spendstream_api_checks.
-- Money in nano-USD. api_key_id is the key's id (never the secret). budget_ids: the budgets that applied.
CREATE TABLE IF NOT EXISTS {db}.check_outcomes
(
    checked_at     DateTime64(3, 'UTC'),
    team           LowCardinality(String),
    use_case       LowCardinality(String),
    cost_center    LowCardinality(String),
    environment    LowCardinality(String),
    provider       LowCardinality(String),
    model          LowCardinality(String),
    decision       LowCardinality(String) COMMENT 'allow | warn | throttle | deny | downgrade',
    reason         String,
    estimated_cost Int64 COMMENT 'nano-USD, the estimate the decision was taken on',
    reserved       UInt8 COMMENT '1 when the estimate is held (reservation_id set)',
    reservation_id String,
    api_key_id     String,
    budget_ids     Array(String),
    suggested_model String
)
ENGINE = MergeTree
ORDER BY (team, checked_at);
