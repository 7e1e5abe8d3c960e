"""Does building a report on the console move /v1/check's latency? HTTP /v1/check at a fixed rate, open loop
(bench/openloop.py), on one API process, in alternating windows: `idle` (no report job) and `report` (a FOCUS export
over --rows generated priced events started through the console just before the window and still running at its
end), --rounds times each, so a noisy shared machine's drift hits both conditions alike. Prints one JSON object:
each window's figures and the median p50 / p99 per condition.

    python bench/console.py [--rows 2000000] [--seconds 6] [--rate 300] [--rounds 4]

Starts its own servers (the launcher: tansu, redis-server, the dev ClickHouse HTTP server) and `spendstream api` on
free loopback ports. Report jobs run as `nice`d child processes of the API (enforcement/console/jobs.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.analytics import generate_sql  # noqa: E402
from bench.api import BODY, free_port, open_loop, start_api  # noqa: E402
from enforcement.auth import ApiKeys  # noqa: E402
from schemas.models import Budget, BudgetScope  # noqa: E402
from sinks.clickhouse.schema import connect, migrate  # noqa: E402
from sinks.redis.client import make_redis  # noqa: E402
from sinks.redis.spend_store import RedisSpendStore  # noqa: E402
from spendstream.cli.launcher import Launcher  # noqa: E402

PREFIX, DB = "bcons", "bconsole"


async def _setup(url: str) -> tuple[str, str]:
    r = make_redis(url, 1.0)
    store = RedisSpendStore(r, PREFIX)
    for b in (Budget(id="pay", scope=BudgetScope(kind="team", value="payments"), limit_usd="1000000", mode="enforce"),
              Budget(id="org", scope=BudgetScope(kind="org", value="all"), limit_usd="5000000")):
        await store.put_budget(b)
    ak = ApiKeys(r, PREFIX)
    check, _ = await ak.create("bench", "check", ["payments"])
    admin, _ = await ak.create("bench-admin", "admin")
    await r.aclose()
    return check, admin


class Console:
    """The console as admin: start a report, read the newest job's status."""

    def __init__(self, base: str, admin_key: str) -> None:
        self.c = httpx.Client(base_url=base, timeout=60)
        page = self.c.get("/ui/sign-in")
        self.csrf = page.cookies["ss_console_csrf"]
        signed = self.c.post("/ui/sign-in", data={"key": admin_key, "csrf": self.csrf},
                             headers={"cookie": f"ss_console_csrf={self.csrf}"})
        self.cookie = {"cookie": f"ss_console={signed.cookies['ss_console']}; ss_console_csrf={self.csrf}"}

    def start(self, kind: str, period: str) -> None:
        self.c.post("/ui/reports", data={"csrf": self.csrf, "kind": kind, "period": period}, headers=self.cookie)

    def newest(self) -> tuple[str, str]:
        """(status, status text) of the newest job."""
        jobs = self.c.get("/ui/reports/jobs", headers=self.cookie).text
        m = re.search(r'<tr data-status="(\w+)"><td>[^<]+</td><td>\w+</td><td>[^<]*</td><td>([^<]*)', jobs)
        return (m.group(1), m.group(2).strip()) if m else ("none", "")

    def wait_idle(self) -> str:
        while (st := self.newest())[0] in ("queued", "running"):
            time.sleep(0.3)
        return st[1]


def _brief(d: dict) -> dict:
    return {k: d[k] for k in ("p50_ms", "p99_ms", "p99_9_ms", "max_ms", "generator_lateness_p99_ms", "answered")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    ports = {k: free_port() for k in ("kafka", "redis", "clickhouse", "api")}
    launcher = Launcher(tmp / "state", ports["kafka"], ports["redis"], tied=True, clickhouse_port=ports["clickhouse"])
    launcher.up()
    api = None
    try:
        dsn, url = f"http://default:@127.0.0.1:{ports['clickhouse']}", f"redis://127.0.0.1:{ports['redis']}/0"
        ch = connect(dsn, 600.0)
        migrate(ch, DB)
        t = time.perf_counter()
        for first in range(0, a.rows, 1_000_000):
            ch.command(generate_sql(DB, first, min(1_000_000, a.rows - first), a.rows))
        load_s = time.perf_counter() - t
        check_key, admin_key = asyncio.run(_setup(url))
        env = {**os.environ, "SPENDSTREAM_REDIS__URL": url, "SPENDSTREAM_REDIS__PREFIX": PREFIX,
               "SPENDSTREAM_CLICKHOUSE__DSN": dsn, "SPENDSTREAM_CLICKHOUSE__DATABASE": DB,
               "SPENDSTREAM_API__PORT": str(ports["api"]), "SPENDSTREAM_SERVICES__STATE_DIR": str(tmp / "state"),
               "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{ports['kafka']}"}
        api = start_api(env, ports["api"], tmp / "api.log")
        base = f"http://127.0.0.1:{ports['api']}"
        open_loop(ports["api"], check_key, BODY, a.rate, 3)  # warm-up
        ui = Console(base, admin_key)
        windows = []
        for i in range(a.rounds):
            windows.append({"round": i, "condition": "idle", **_brief(open_loop(ports["api"], check_key, BODY, a.rate,
                                                                             a.seconds))})
            ui.start("focus", "2026-11")
            time.sleep(0.5)
            fig = _brief(open_loop(ports["api"], check_key, BODY, a.rate, a.seconds))
            running_at_end = ui.newest()[0] == "running"
            windows.append({"round": i, "condition": "report", "job_still_running_at_window_end": running_at_end,
                            "job": ui.wait_idle(), **fig})
    finally:
        if api is not None:
            api.terminate()
            api.wait(20)
        launcher.down()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {cond: {f"median_{k}": statistics.median(w[k] for w in windows if w["condition"] == cond)
                      for k in ("p50_ms", "p99_ms")} for cond in ("idle", "report")}
    print(json.dumps({"rows": a.rows, "load_s": round(load_s, 1), "rate": a.rate, "seconds_per_window": a.seconds,
                      "summary": summary, "windows": windows, "cpus": os.cpu_count(),
                      "loadavg_at_end": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
