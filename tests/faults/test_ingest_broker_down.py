"""POST /v1/events while the broker is unreachable: the API still answers 202, the events wait in the API
publisher's disk spool, and once a publisher on that spool reaches the broker they are booked exactly once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from enforcement.api import create_app
from enforcement.auth import ApiKeys
from enforcement.intake import EventIntake
from integrations.publisher import Publisher, producer_config
from integrations.spool import DiskSpool
from spendstream.cli.services import create_topics
from spendstream.windows import window_ids
from tests.conftest import child, free_port, wait_until
from tests.integration.test_enforcement_reservations import make_env

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_events_posted_while_the_broker_is_down_are_spooled_then_booked_once(isolated, tmp_path):
    settings = isolated.settings()
    create_topics(settings)
    spool_dir = tmp_path / "api-spool"
    now = int(time.time() * 1000)
    events = [{"event_id": f"down-{i}", "event_time": now, "provider": "openai", "model": "gpt-4o",
               "input_tokens": 100, "output_tokens": 10} for i in range(30)]
    down = Publisher(settings.kafka.usage_topic, producer_config(f"127.0.0.1:{free_port()}"),
                     spool=DiskSpool(spool_dir), source="import", probe_interval_s=0.2)

    async def post() -> httpx.Response:
        env = make_env(isolated.servers.redis_url, isolated.prefix)
        keys = ApiKeys(env.r, isolated.prefix)
        key, _ = await keys.create("exporter", "ingest", ["payments"])
        app = create_app(env.checker, keys, intake=EventIntake(down))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            resp = await client.post("/v1/events", json=events, headers={"Authorization": f"Bearer {key}"})
        await env.r.aclose()
        return resp

    resp = asyncio.run(post())
    assert resp.status_code == 202 and resp.json() == {"accepted": 30, "rejected": []}
    down.close(timeout=1.0)                             # undeliverable: purged into the spool, not lost
    assert DiskSpool(spool_dir).pending_bytes > 0 and down.stats.failed == 0

    r = redis.Redis.from_url(settings.redis.url)
    team_key = f"{isolated.prefix}:{{team:payments}}:{window_ids(now).month}"
    with child(["worker"], isolated.env, tmp_path / "worker.log"):
        back = Publisher(settings.kafka.usage_topic, producer_config(settings.kafka.bootstrap_servers),
                         spool=DiskSpool(spool_dir), probe_interval_s=0.2)
        try:
            wait_until(lambda: int(r.hget(team_key, "events") or 0) >= 30, 60, what="the spooled events booked")
            time.sleep(1)
        finally:
            back.close(timeout=5)
    assert int(r.hget(team_key, "events")) == 30
    assert DiskSpool(spool_dir).pending_bytes == 0
