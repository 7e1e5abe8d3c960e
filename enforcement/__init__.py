"""Enforcement: the Redis spend store (Lua), reservations, the HTTP API and the in-process client."""
