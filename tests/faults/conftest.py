"""Fixtures and helpers for the fault tests: everything here drives REAL servers (tansu, redis-server, the ClickHouse
engine over HTTP) and breaks them on purpose. Shared fixtures (`servers`, `isolated`) come from tests/conftest.py."""

from __future__ import annotations

import random
import urllib.request
from dataclasses import dataclass, field

import pytest
import redis

from schemas.codec import UsageCodec
from spendstream.synthetic import SyntheticStream
from tests.private_servers import PrivateClickHouse, PrivateRedis
from tests.oracle import oracle_total


# ---- a stream whose every message's fate is known in advance ---------------------------------------------------
@dataclass
class MixedStream:
    """Messages to publish, and what the worker must make of them.

    `unique` = the distinct valid events (by event_id) (priced by the test oracle); `events` counts every event the
    worker will see (valid copies + bad ones); `dead` counts the events that must be dead-lettered."""

    messages: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    unique: dict[str, dict] = field(default_factory=dict)
    events: int = 0
    dead: int = 0
    duplicates: int = 0

    @property
    def expected_cost(self) -> int:
        return oracle_total(self.unique.values())  # the independent oracle, not the product's pricer


def mixed_stream(n: int, now_ms: int, *, seed: int = 11, batch_share: float = 0.8, batch_size: int = 200,
                 bad_every: int = 400, dup_share: float = 0.01) -> MixedStream:
    """`n` unique valid events: `batch_share` of them packed `batch_size` per message (encode_batch), the rest one
    per message; about 1 in `bad_every` messages is malformed (whole-message dead letter) and some batches carry
    one invalid event (dead-lettered alone, by index); `dup_share` of events are re-sent later as duplicates."""
    rng = random.Random(seed)
    codec = UsageCodec()
    syn = SyntheticStream(seed=seed)
    out = MixedStream()
    events = list(syn.events(n, now_ms))
    for e in events:
        out.unique[e["event_id"]] = e
    dups = [dict(rng.choice(events)) for _ in range(int(n * dup_share))]
    out.duplicates = len(dups)
    n_batched = int(n * batch_share)
    msgs: list[tuple[bytes | None, bytes | None]] = []
    for i in range(0, n_batched, batch_size):
        chunk = events[i:min(i + batch_size, n_batched)]
        if rng.random() < 0.05:  # one bad event inside a good batch
            bad = dict(chunk[0], event_id=f"bad-in-batch-{i}", input_tokens=-5)
            chunk = chunk + [bad]
            out.dead += 1
        msgs.append((chunk[0]["team"].encode() if chunk[0]["team"] else None, codec.encode_batch(chunk)))
        out.events += len(chunk)
    for e in events[n_batched:] + dups:
        msgs.append(((e.get("team") or "").encode(), codec.encode(e)))
        out.events += 1
    rng.shuffle(msgs)
    with_bad: list[tuple[bytes | None, bytes | None]] = []
    for i, m in enumerate(msgs):
        with_bad.append(m)
        if i % bad_every == bad_every - 1:
            with_bad.append((b"junk", rng.choice([b"", b"\x01\x00\x00\x00\x01garbage", b"\x00\x00",
                                                   b"\x00\x00\x0f\x42\x40" + rng.randbytes(20)])))
            out.events += 1
            out.dead += 1
    out.messages = with_bad
    return out


# ---- Redis ---------------------------------------------------------------------------------------------------
def redis_snapshot(r: redis.Redis, prefix: str) -> dict[str, object]:
    """Every key under `prefix:` -> its value (str, or dict for hashes). Bounded: SCAN with COUNT."""
    out: dict[str, object] = {}
    for key in r.scan_iter(match=f"{prefix}:*", count=2000):
        k = key.decode()
        t = r.type(key).decode()
        if t == "hash":
            out[k] = {f.decode(): v.decode() for f, v in r.hgetall(key).items()}
        elif t == "string":
            out[k] = r.get(key).decode()
        else:
            out[k] = t
    return out


@pytest.fixture
def own_clickhouse(tmp_path):
    """A ClickHouse dev server of the test's own (data in <tmp_path>/clickhouse), to kill, freeze and restart."""
    server = PrivateClickHouse(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["redis", "redis-cluster"])
def wipeable_redis_url(request, tmp_path):
    """A Redis a test may FLUSHALL: a redis-server of its own, or the session's real Redis Cluster (every test
    there keeps its own key prefix, and no test relies on keys another test left)."""
    if request.param == "redis-cluster":
        yield request.getfixturevalue("redis_cluster")
        return
    server = PrivateRedis(tmp_path)
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def own_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    try:
        yield server
    finally:
        server.kill()


# ---- worker metrics --------------------------------------------------------------------------------------------
def scrape(port: int) -> dict[str, float]:
    """The worker's Prometheus metrics (unlabelled samples, and labelled ones summed by name)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        out[base] = out.get(base, 0.0) + float(value)
    return out


def try_scrape(port: int) -> dict[str, float] | None:
    try:
        return scrape(port)
    except OSError:
        return None
