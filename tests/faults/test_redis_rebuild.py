"""Redis loses everything (FLUSHALL on a Redis of the test's own) -> `spendstream rebuild-counters` restores every
open window, applied mark, dedupe marker, budget, active decision and alert marker from ClickHouse; a worker
restarted afterwards books new events exactly once and still catches late duplicates of old ones."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest
import yaml

from schemas.codec import UsageCodec
from spendstream.cli.services import create_topics
from spendstream.pricing import default_price_book
from spendstream.synthetic import SyntheticStream
from spendstream.windows import expire_at, window_ids
from tests.conftest import ROOT, sync_redis, child, produce, query_clickhouse, wait_until
from tests.faults.conftest import redis_snapshot, try_scrape

pytestmark = pytest.mark.faults

N = 20_000
HOUR_MS = 3_600_000


def _usd(nanos: int) -> str:
    return f"{nanos // 10**9}.{nanos % 10**9:09d}"


def _cli(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "spendstream", *args], env={**os.environ, **env}, cwd=ROOT,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _budgets(spend: dict, research_limit: str) -> dict:
    """Limits at half of what the stream will spend, so every enforce budget breaches and decides."""
    return {"budgets": [
        {"id": "pay-deny", "scope": {"kind": "team", "value": "payments"}, "period": "month",
         "limit_usd": _usd(spend["payments"] // 2), "mode": "enforce", "action": "deny"},
        {"id": "support-throttle", "scope": {"kind": "team", "value": "support"}, "period": "month",
         "limit_usd": _usd(spend["support"] // 2), "mode": "enforce", "action": "throttle", "throttle_rps": 2.5},
        {"id": "search-downgrade", "scope": {"kind": "team", "value": "search"}, "period": "day",
         "limit_usd": _usd(spend["search-day"] // 2), "mode": "enforce", "action": "downgrade",
         "downgrade_model": "gpt-4o-mini"},
        {"id": "research-lift", "scope": {"kind": "team", "value": "research"}, "period": "month",
         "limit_usd": research_limit, "mode": "enforce", "action": "deny"},
        {"id": "org-show", "scope": {"kind": "org", "value": "all"}, "period": "month",
         "limit_usd": "100000", "mode": "showback", "thresholds": [1, 50]},
    ]}


def test_rebuild_counters_restores_redis_from_clickhouse_after_a_flushall(isolated, wipeable_redis_url, tmp_path,
                                                                          monkeypatch):
    env = {**isolated.env, "SPENDSTREAM_REDIS__URL": wipeable_redis_url}
    monkeypatch.setenv("SPENDSTREAM_REDIS__URL", wipeable_redis_url)
    settings = isolated.settings()
    create_topics(settings)
    now = int(time.time() * 1000)
    rng = random.Random(3)
    syn = SyntheticStream(seed=61)
    events = list(syn.events(N, now))
    for e in events[: N * 3 // 10]:  # 30 % spread over the last 9 days: old hour windows are past retention
        e["event_time"] = now - rng.randrange(HOUR_MS, 9 * 24 * HOUR_MS)
    book = default_price_book()
    cost = {e["event_id"]: book.price(e).charged_nanos for e in events}
    month, day = window_ids(now).month, window_ids(now).day
    spend = {t: sum(cost[e["event_id"]] for e in events if e["team"] == t and window_ids(e["event_time"]).month == month)
             for t in ("payments", "support")}
    spend["search-day"] = sum(cost[e["event_id"]] for e in events
                              if e["team"] == "search" and window_ids(e["event_time"]).day == day)
    research = sum(cost[e["event_id"]] for e in events if e["team"] == "research" and window_ids(e["event_time"]).month == month)
    file_a, file_b = tmp_path / "budgets-a.yaml", tmp_path / "budgets-b.yaml"
    file_a.write_text(yaml.safe_dump(_budgets(spend, _usd(research // 2))))
    file_b.write_text(yaml.safe_dump(_budgets(spend, "100000")))  # research raised: its decision is lifted

    codec = UsageCodec()
    half = N // 2  # half packed 100 per batch message, half one event per message
    msgs = [(b"b", codec.encode_batch(events[i:i + 100])) for i in range(0, half, 100)]
    msgs += [((e["team"] or "").encode(), codec.encode(e)) for e in events[half:]]
    rng.shuffle(msgs)

    r = sync_redis(wipeable_redis_url)
    p = isolated.prefix
    decisions_key = f"{p}:{{budgets}}:decisions"
    _cli(env, "budgets", "apply", str(file_a))
    with child(["worker"], env, tmp_path / "worker-1.log"):
        produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic, msgs)
        wait_until(lambda: sum(int(r.hget(k, "events") or 0) for k in r.scan_iter(f"{p}:{{org:all}}:d:*")) >= N,
                   120, what="every event booked")
        wait_until(lambda: r.hlen(decisions_key) == 4, 30, what="four decisions")
        _cli(env, "budgets", "apply", str(file_b))
        wait_until(lambda: not r.hexists(decisions_key, "research-lift"), 30, what="research decision lifted")
        time.sleep(0.5)  # the lift's ledger rows are flushed with the next flush / the final one
    # partition ownership epochs (`:owner`) and in-flight INSERT intents (`:inflight`) are not rebuilt, by design:
    # the rebuild runs with every worker stopped, so no zombie is left to fence or whose INSERT could still land,
    # and each restarted worker claims a fresh epoch
    before = {k: v for k, v in redis_snapshot(r, p).items() if not k.endswith((":owner", ":inflight"))}
    ttl_before = {k: r.ttl(k) for k in before}
    ttl_taken = time.monotonic()
    assert r.hlen(decisions_key) == 3
    kinds = {name: sum(1 for k in before if name in k) for name in (":seen:", ":fired:", ":wm", ":applied", ":{org:all}:h:")}
    assert all(kinds.values()), kinds
    research_fired = {k.split(":fired:research-lift:", 1)[1] for k in before if ":fired:research-lift:" in k}
    assert f"{month}:threshold:50" in research_fired and f"{month}:threshold:100" not in research_fired, research_fired

    r.flushall()
    assert redis_snapshot(r, p) == {}
    started = time.monotonic()
    report = _cli(env, "rebuild-counters", "--budgets", str(file_b))
    rebuild_s = time.monotonic() - started
    after = redis_snapshot(r, p)

    # ---- the rebuilt store is the store that was lost ---------------------------------------------------------
    assert sorted(after) == sorted(before), report
    marks = {f"{t}:{part}": int(o) for t, part, o in query_clickhouse(
        env, "SELECT kafka_topic, kafka_partition, max(kafka_offset) FROM {db}.priced_events GROUP BY 1, 2")}
    singles = {(int(part), int(o)) for part, o, n in query_clickhouse(
        env, "SELECT kafka_partition, kafka_offset, count() FROM {db}.priced_events GROUP BY 1, 2") if int(n) == 1}
    windows = 0
    for key, old in before.items():
        new = after[key]
        if key.endswith(":wm"):  # scope watermarks: same partitions, raised to the partition's applied mark
            assert set(new) == set(old), key
            for field, off in new.items():
                assert int(off) == marks[field] >= int(old[field]), (key, field)
        elif key.endswith(":applied"):
            tp = key.split("{p:", 1)[1].split("}", 1)[0]
            assert int(new) == marks[tp] == int(old), key  # every partition ends with a priced event here
        elif ":seen:" in key:  # dedupe markers: same ids, same record (the index is exact for single-event records)
            assert set(new) == set(old), key
            for event_id, where in old.items():
                part, _, rest = where.partition(":")
                off = rest.partition(".")[0]
                assert new[event_id].partition(".")[0] == f"{part}:{off}", (key, event_id)
                if (int(part), int(off)) in singles:
                    assert new[event_id] == where
        elif key == decisions_key:
            assert {k: json.loads(v) for k, v in new.items()} == {k: json.loads(v) for k, v in old.items()}
        else:  # window counters (exact to the nano-USD), budgets, alert markers
            assert new == old, key
            if ":{budgets}:" not in key:
                windows += 1
        if ttl_before[key] > 0 and ":seen:" not in key:  # the same absolute expiry (TTLs fall as time passes)
            assert abs(r.ttl(key) + (time.monotonic() - ttl_taken) - ttl_before[key]) <= 5, key
    assert windows > 100
    # hour windows older than 7 days are past their retention: neither the worker nor the rebuild keeps them
    old_hours = {window_ids(e["event_time"]).hour for e in events if expire_at(window_ids(e["event_time"]).hour) < now // 1000}
    assert old_hours and not any(f"{{org:all}}:{h}" in k for k in after for h in old_hours)

    # ---- a worker restarted on the rebuilt store: new events once, late duplicates of old ones caught --------
    new_events = list(SyntheticStream(seed=62).events(2_000, int(time.time() * 1000)))
    late_dups = rng.sample(events, 500)
    produce(settings.kafka.bootstrap_servers, settings.kafka.usage_topic,
            [(b"n", codec.encode(e)) for e in new_events + late_dups])
    web = int(env["SPENDSTREAM_WORKER__WEB_PORT"])
    with child(["worker"], env, tmp_path / "worker-2.log"):
        m = wait_until(lambda: (x := try_scrape(web)) and x.get("spendstream_events_in_total", 0) >= 2_500 and x,
                       120, 0.5, what="the new events and the late duplicates processed")
        time.sleep(1.0)
        m = try_scrape(web)
    assert (m["spendstream_events_booked_total"], m["spendstream_events_duplicate_total"]) == (2_000, 500)
    by_day: dict[str, tuple[int, int]] = {}
    for e in events + new_events:
        d = window_ids(e["event_time"]).day
        n, c = by_day.get(d, (0, 0))
        by_day[d] = (n + 1, c + book.price(e).charged_nanos)
    for d, (n, c) in by_day.items():
        cell = r.hgetall(f"{p}:{{org:all}}:{d}")
        assert (int(cell[b"events"]), int(cell[b"spend"])) == (n, c), d
    print(f"rebuild-counters: {rebuild_s:.1f}s for {N} events, {windows} keys compared, {kinds}")
