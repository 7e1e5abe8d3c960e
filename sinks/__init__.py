"""Sinks: ClickHouse (migrations, buffered writer, reports), alert notifiers, the dead-letter queue."""
