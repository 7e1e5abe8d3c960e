"""Where the stream writes: the Redis spend store (`sinks.redis`), ClickHouse (`sinks.clickhouse`), alert
notifiers and the dead-letter queue. Reports (the read side of ClickHouse) live in the top-level `reports/`."""
