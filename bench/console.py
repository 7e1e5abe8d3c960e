"""Does building a report on the console move /v1/check's latency? HTTP /v1/check at a fixed rate, open loop
(bench/openloop.py), measured three times on one API process: before, WHILE the console builds reports back to back
(monthly review, FOCUS export, weekly digest over --rows generated priced events), and after. Prints one JSON object.

    python bench/console.py [--rows 2000000] [--seconds 20] [--rate 1000]

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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.analytics import generate_sql  # noqa: E402
from bench.api import BODY, free_port, open_loop  # noqa: E402
from enforcement.auth import ApiKeys  # noqa: E402
from schemas.models import Budget, BudgetScope  # noqa: E402
from sinks.clickhouse.schema import connect, migrate  # noqa: E402
from sinks.redis.client import make_redis  # noqa: E402
from sinks.redis.spend_store import RedisSpendStore  # noqa: E402
from spendstream.cli.launcher import Launcher  # noqa: E402

PREFIX, DB = "bcons", "bconsole"
REPORTS = [("monthly", "2026-11", "real-cost"), ("focus", "2026-11", ""), ("weekly", "2026-W47", "")]


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


class ReportLoop(threading.Thread):
    """Signs in to the console as admin and builds reports one after another until stopped."""

    def __init__(self, base: str, admin_key: str) -> None:
        super().__init__(daemon=True)
        self.base, self.key, self.stop, self.done = base, admin_key, threading.Event(), []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as c:
            page = c.get("/ui/sign-in")
            csrf = page.cookies["ss_console_csrf"]
            signed = c.post("/ui/sign-in", data={"key": self.key, "csrf": csrf},
                            headers={"cookie": f"ss_console_csrf={csrf}"})
            cookie = {"cookie": f"ss_console={signed.cookies['ss_console']}; ss_console_csrf={csrf}"}
            i = 0
            while not self.stop.is_set():
                kind, period, model = REPORTS[i % len(REPORTS)]
                i += 1
                c.post("/ui/reports", data={"csrf": csrf, "kind": kind, "period": period, "model": model},
                       headers=cookie)
                while not self.stop.is_set():
                    jobs = c.get("/ui/reports/jobs", headers=cookie).text
                    first = re.search(r'<tr data-status="(\w+)"><td>[^<]+</td><td>(\w+)</td><td>[^<]*</td><td>([^<]*)',
                                      jobs)
                    if first and first.group(1) in ("done", "failed"):
                        self.done.append({"report": first.group(2), "status": first.group(1),
                                          "took": first.group(3).strip()})
                        break
                    time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rate", type=int, default=1000)
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
        api = subprocess.Popen([sys.executable, "-m", "spendstream", "api"], env=env, cwd=ROOT,
                               stdout=open(tmp / "api.log", "wb"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{ports['api']}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        open_loop(ports["api"], check_key, BODY, a.rate, 3)  # warm-up
        before = open_loop(ports["api"], check_key, BODY, a.rate, a.seconds)
        loop = ReportLoop(base, admin_key)
        loop.start()
        time.sleep(1.0)  # the first job is running
        during = open_loop(ports["api"], check_key, BODY, a.rate, a.seconds)
        loop.stop.set()
        loop.join(120)
        after = open_loop(ports["api"], check_key, BODY, a.rate, a.seconds)
    finally:
        if api is not None:
            api.terminate()
            api.wait(20)
        launcher.down()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"rows": a.rows, "load_s": round(load_s, 1), "rate": a.rate, "seconds": a.seconds,
                      "check_before": before, "check_while_reports_build": during, "check_after": after,
                      "reports_built_during": loop.done, "cpus": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
