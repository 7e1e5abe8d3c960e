-- Rollups kept by materialized views, so reports never scan priced_events.
-- Exactly-once: the worker inserts each event once (sinks/clickhouse_writer.py guards with kafka offsets), so a
-- view fed by INSERTs into priced_events never double counts. SummingMergeTree folds rows of equal key on merge,
-- and every report query re-aggregates with GROUP BY, so results are exact before and after merges.
-- On a cluster: Replicated* engines with the same ORDER BY, and a Distributed table over each.
-- paved = 1 when the call went through the sanctioned gateway (source gateway or litellm).
-- correction = 1 for rows booked by a reprice (see 0003), 0 for metered usage.
CREATE TABLE IF NOT EXISTS {db}.cost_hourly
(
    hour                DateTime('UTC'),
    team                LowCardinality(String),
    use_case            LowCardinality(String),
    model               LowCardinality(String),
    cost_center         LowCardinality(String),
    environment         LowCardinality(String),
    provider            LowCardinality(String),
    workload_type       LowCardinality(String),
    paved               UInt8,
    fully_tagged        UInt8,
    correction          UInt8,
    events              Int64,
    requests            Int64,
    input_tokens        Int64,
    output_tokens       Int64,
    cached_input_tokens Int64,
    cache_write_tokens  Int64,
    reasoning_tokens    Int64,
    gpu_seconds         Float64,
    gpu_util_seconds    Float64 COMMENT 'GPU seconds of events that report attributes[gpu_utilization]',
    gpu_busy_seconds    Float64 COMMENT 'sum of gpu_seconds x gpu_utilization over those events',
    list_cost           Int64,
    contracted_cost     Int64,
    cost                Int64 COMMENT 'charged cost, nano-USD',
    unpriced_cost       Int64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (team, hour, use_case, model, cost_center, environment, provider, workload_type, paved, fully_tagged, correction);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.cost_hourly_mv TO {db}.cost_hourly AS
SELECT
    toDateTime(toStartOfHour(event_time), 'UTC') AS hour,
    team, use_case, model, cost_center, environment, provider, workload_type,
    toUInt8(source IN ('gateway', 'litellm')) AS paved,
    fully_tagged,
    toUInt8(0) AS correction,
    toInt64(count()) AS events,
    sum(request_count) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(gpu_seconds) AS gpu_seconds,
    sum(if(mapContains(p.attributes, 'gpu_utilization'), p.gpu_seconds, 0.)) AS gpu_util_seconds,
    sum(if(mapContains(p.attributes, 'gpu_utilization'),
           p.gpu_seconds * least(greatest(toFloat64OrZero(p.attributes['gpu_utilization']), 0.), 1.), 0.)) AS gpu_busy_seconds,
    sum(list_cost) AS list_cost,
    sum(contracted_cost) AS contracted_cost,
    sum(cost) AS cost,
    sum(if(p.unpriced = 1, p.cost, 0)) AS unpriced_cost
FROM {db}.priced_events AS p
GROUP BY hour, team, use_case, model, cost_center, environment, provider, workload_type, paved, fully_tagged;

-- Cost per business activity (ticket, PR, training run): one row per activity and day, so the digest counts
-- distinct activities without touching raw events.
CREATE TABLE IF NOT EXISTS {db}.activity_daily
(
    day           Date,
    team          LowCardinality(String),
    use_case      LowCardinality(String),
    activity_type LowCardinality(String),
    activity_id   String,
    events        Int64,
    cost          Int64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (team, day, activity_type, use_case, activity_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.activity_daily_mv TO {db}.activity_daily AS
SELECT toDate(event_time, 'UTC') AS day, team, use_case, activity_type, activity_id,
       toInt64(count()) AS events, sum(cost) AS cost
FROM {db}.priced_events
WHERE activity_type != ''
GROUP BY day, team, use_case, activity_type, activity_id;
