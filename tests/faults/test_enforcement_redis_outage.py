"""The enforcement API (a real `spendstream api` process) under a steady stream of checks while its Redis hangs
(SIGSTOP) and then dies (kill -9, restarted empty on the same port): every answer is a 200 by the budgets' fail
modes with reason "spend store unavailable", and normal answers come back by themselves — no API restart, never
a 5xx."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import defaultdict

import httpx
import pytest
import redis

from sinks.redis.keys import Keys
from schemas.models import Budget, BudgetScope
from tests.conftest import child, wait_until

pytestmark = pytest.mark.faults

ADMIN = "faults-admin-key-0123456789"
BUDGETS = [  # fail closed (enforce), fail open (showback), enforce but told to fail open
    Budget(id="pay", scope=BudgetScope(kind="team", value="payments"), limit_usd="1000", mode="enforce"),
    Budget(id="search", scope=BudgetScope(kind="team", value="search"), limit_usd="1000", mode="showback"),
    Budget(id="ml", scope=BudgetScope(kind="team", value="ml"), limit_usd="1000", mode="enforce", fail_mode="open"),
]
EXPECT_DOWN = {"payments": ("deny", "spend store unavailable: budget pay fails closed"),
               "search": ("allow", "spend store unavailable: failing open"),
               "ml": ("allow", "spend store unavailable: failing open")}


def _apply_budgets(url: str, prefix: str) -> None:
    r = redis.Redis.from_url(url)
    r.hset(Keys(prefix).budgets(), mapping={b.id: b.model_dump_json() for b in BUDGETS})
    r.close()


class Load:
    """Threads posting checks in a loop until stopped; every answer is kept with its time and phase."""

    def __init__(self, port: int, threads: int = 3) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/check"
        self.phase = "up"
        self.answers: list[tuple[str, str, int, dict, float]] = []  # (phase, team, status, body, seconds)
        self.per_thread: dict[tuple[str, int], int] = defaultdict(int)  # (phase, thread) -> answers
        self.errors: list[tuple[str, int, str]] = []  # (phase, thread, exception): a hung or failed request
        self.phase_seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        teams = ("payments", "search", "ml")
        n = i
        # a request that hangs times out (every answer must come in < 1 s while Redis is down; 3 s is generous)
        # and is recorded as an error, which fails the test — a thread must never die or hang silently
        with httpx.Client(headers={"Authorization": f"Bearer {ADMIN}"}, timeout=3.0) as c:
            while not self._stop.is_set() and len(self.answers) < 100_000:
                team = teams[n % 3]
                n += 1
                phase = self.phase
                t0 = time.monotonic()
                try:
                    resp = c.post(self.url, json={"team": team, "provider": "openai", "model": "gpt-4o",
                                                  "estimated_cost_usd": "0.001", "reserve": n % 2 == 0})
                    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
                except Exception as exc:  # noqa: BLE001 — every failure is collected and fails the test
                    self.errors.append((phase, i, f"{type(exc).__name__}: {exc} after {time.monotonic() - t0:.2f}s"))
                    continue
                # a request in flight across a phase change is judged only on its status
                judged = phase if self.phase == phase else "straddle"
                self.answers.append((judged, team, resp.status_code, body, time.monotonic() - t0))
                self.per_thread[(judged, i)] += 1

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        self.hung = [t.name for t in self._threads if t.is_alive()]

    def run_phase(self, name: str, seconds: float) -> None:
        self.phase = name
        self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + seconds
        time.sleep(seconds)


def test_checks_answer_by_fail_mode_while_redis_hangs_or_dies_and_recover_without_an_api_restart(
        isolated, own_redis, tmp_path):
    env = {**isolated.env, "SPENDSTREAM_REDIS__URL": own_redis.url, "SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY": ADMIN}
    port = int(env["SPENDSTREAM_API__PORT"])
    _apply_budgets(own_redis.url, isolated.prefix)
    with child(["api"], env, tmp_path / "api.log") as api:
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, 30, what="the API listening")
        with Load(port) as load:
            load.run_phase("up", 2.0)
            load.phase = "settle"  # answers while a fault is being applied are judged only on their status
            own_redis.proc.send_signal(signal.SIGSTOP)  # hung: connections open, no answers
            load.run_phase("settle", 1.5)
            load.run_phase("hung", 3.0)
            load.phase = "recover-1"
            own_redis.proc.send_signal(signal.SIGCONT)
            load.run_phase("recover-1", 2.5)
            load.run_phase("up-again", 2.0)
            load.phase = "settle-2"
            own_redis.kill()  # dead: connection refused
            load.run_phase("settle-2", 1.5)
            load.run_phase("dead", 3.0)
            load.phase = "recover-2"
            own_redis.start()  # same port, empty (no persistence): the operator re-applies the reviewed budgets
            _apply_budgets(own_redis.url, isolated.prefix)
            load.run_phase("recover-2", 2.5)
            load.run_phase("up-at-last", 2.0)
        assert api.poll() is None, "the API process died"
    assert load.hung == [], f"load threads still blocked in a request: {load.hung}"
    assert load.errors == [], f"requests that failed or hung: {load.errors[:10]} ({len(load.errors)} in all)"
    # every thread kept getting answers in every judged phase: a thread stuck on one request answers too few.
    # Down-phase answers take < 1 s (asserted below), so a thread answers at least once per second of a phase,
    # minus the request that straddles each edge.
    for phase in ("up", "hung", "up-again", "dead", "up-at-last"):
        least = max(1, int(load.phase_seconds[phase]) - 1)
        counts = {i: load.per_thread[(phase, i)] for i in range(3)}
        assert min(counts.values()) >= least, (phase, counts, least)

    by_phase = defaultdict(list)
    for phase, team, status, body, secs in load.answers:
        by_phase[phase].append((team, status, body, secs))
    assert all(by_phase[p] for p in ("up", "hung", "up-again", "dead", "up-at-last")), {k: len(v) for k, v in by_phase.items()}
    statuses = {status for _, _, status, _, _ in load.answers}
    assert statuses == {200}, f"non-200 answers: {statuses}"
    for phase in ("up", "up-again", "up-at-last"):  # normal answers, live spend read from Redis
        for team, _, body, _ in by_phase[phase]:
            assert body["decision"] == "allow" and not body["reason"].startswith("spend store unavailable"), (phase, body)
            assert body["budgets"] and body["budgets"][0]["spent_usd"] is not None, (phase, body)
    for phase in ("hung", "dead"):  # by fail mode, and quickly (tight socket timeout: no request waits on Redis)
        for team, _, body, secs in by_phase[phase]:
            assert (body["decision"], body["reason"]) == EXPECT_DOWN[team], (phase, team, body)
            assert body["budgets"][0]["spent_usd"] is None
            assert secs < 1.0, (phase, secs)
    print({k: len(v) for k, v in by_phase.items()})
