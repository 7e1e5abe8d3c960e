-- [console] One row per dead letter (the Kafka DLQ spend.dlq.v1 keeps the bytes; this table keeps the count):
-- when, where from (topic, partition, offset, index in a batch message, -1 for a whole message), why, and the team,
-- use case and event_id when the event decoded far enough to name them ('' otherwise: counted as "no team").
-- Exactly once, like priced_events: the first line is the writer's offset guard (sinks/clickhouse/dead_letters.py:
-- a partition's letters at or below the highest offset this table holds for it are never inserted again, so a
-- redelivered or replayed batch adds no raw row); the second is this ReplacingMergeTree, whose key is the letter's
-- source position, so a row that still slipped in twice (a rebalance race) collapses on merge and under FINAL.
-- A `spendstream dlq replay` of a letter whose cause is not fixed dead-letters the same event again at a NEW offset:
-- a new row, the same letter_id, so readers count uniqExact(letter_id) (reports/console_reads.py), never rows.
-- No PARTITION BY: a copy written later (another month) must meet its original in one partition to collapse.
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    dead_at         DateTime64(3, 'UTC') COMMENT 'when the worker dead-lettered it',
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64,
    batch_index     Int32 COMMENT 'position of the event inside a batch message, -1 for the whole message',
    reason          LowCardinality(String),
    detail          String,
    team            LowCardinality(String) COMMENT 'as the event names it, empty when unknown (no team)',
    use_case        LowCardinality(String),
    event_id        String,
    letter_id       String COMMENT 'the bad event: its event_id, else a hash of the original bytes and the index'
)
ENGINE = ReplacingMergeTree(dead_at)
ORDER BY (kafka_topic, kafka_partition, kafka_offset, batch_index);
-- the writer's insert_deduplication_token (a retried block counts once), as migration 0006 for priced_events
ALTER TABLE {db}.dead_letters MODIFY SETTING non_replicated_deduplication_window = 10000
