"""The Redis spend store, shared by the stream (writes) and the enforcement API (reads, holds): key names, the Lua
scripts and the one script runner, exactly-once batch application, reservations, throttle buckets, the counter
rebuild. Every Lua call touches keys of ONE hash slot, so the same code runs on Redis Cluster (see keys.py)."""
