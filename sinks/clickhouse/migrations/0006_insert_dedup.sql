-- Exactly-once inserts across a hung or timed-out HTTP request: the writer sends each partition's slice of a block
-- with an `insert_deduplication_token` (topic:partition:first-last:rows) and retries a failed block unchanged, so a
-- request the server executes after the client gave up (a frozen server resuming) and its retry count once.
-- Plain MergeTree keeps the last N block tokens only with this setting; the rollups (materialized view targets)
-- need it too, with `deduplicate_blocks_in_dependent_materialized_views = 1` on the insert.
ALTER TABLE {db}.priced_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE {db}.cost_hourly MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE {db}.activity_daily MODIFY SETTING non_replicated_deduplication_window = 10000
