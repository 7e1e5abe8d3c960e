"""Small development servers that stand in for production services (e.g. a ClickHouse HTTP server backed by chdb)."""
