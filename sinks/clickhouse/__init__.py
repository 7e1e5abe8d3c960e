"""ClickHouse, the write side: connection and versioned migrations, the buffered exactly-once writer, and the row
shapes of priced events and the ledger tables. The read side (reports) lives in the top-level `reports/`."""
