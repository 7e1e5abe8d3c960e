"""Scheduled reports with two real worker processes (`spendstream worker`'s entry point, one consumer group) on a
clock the test controls: the weekly digest and the monthly review run exactly once per period — one process writes
them, the other does not — and each team's summary reaches a local Slack receiver once, and the team routed to
email a local SMTP server (aiosmtpd) once. Both workers tick every 0.3 s; time is moved forward twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from tests.conftest import ROOT, ClickHouseDb, free_port, wait_until
from tests.integration.test_reports_ledger import load
from tests.integration.test_scheduled_reports import slack, smtp  # noqa: F401 - fixtures
from tests.scaleout.clocked_worker import set_clock

pytestmark = pytest.mark.integration


def ms(*a) -> int:
    return int(datetime(*a, tzinfo=UTC).timestamp() * 1000)


def runs_in(out_dir) -> set[str]:
    """Which periods a worker wrote: digest-2026-W47-<team>.html -> 'weekly 2026-W47', review-2026-10-... ->
    'monthly 2026-10'."""
    got = set()
    for p in out_dir.glob("*.html") if out_dir.exists() else []:
        parts = p.stem.split("-")
        if parts[0] == "digest":
            got.add(f"weekly {parts[1]}-{parts[2]}")
        elif parts[0] == "review":
            got.add(f"monthly {parts[1]}-{parts[2]}")
    return got


def test_two_worker_processes_run_each_due_report_once_and_deliver_it_once(isolated, tmp_path, slack, smtp):  # noqa: F811
    from sinks.clickhouse.schema import connect, migrate

    url, posts = slack
    port, mails = smtp
    client = connect(isolated.ch_dsn)
    migrate(client, isolated.database)
    load(ClickHouseDb(client, isolated.database, isolated.ch_dsn), 2_000)  # Oct-Nov 2026 spend, six teams
    clock = tmp_path / "clock"
    set_clock(clock, ms(2026, 11, 23, 5, 0))  # Monday 05:00: W46 (missed) and October's review are due
    env = {**os.environ, **isolated.env,
           "SPENDSTREAM_REPORTS__SCHEDULE_ENABLED": "true", "SPENDSTREAM_REPORTS__TICK_S": "0.3",
           "SPENDSTREAM_REPORTS__CLOSE_BUDGETS": "false",
           "SPENDSTREAM_ALERTS__SLACK_WEBHOOK_URL": url,
           "SPENDSTREAM_ALERTS__SMTP_HOST": "127.0.0.1", "SPENDSTREAM_ALERTS__SMTP_PORT": str(port),
           "SPENDSTREAM_ALERTS__TEAM_EMAILS": json.dumps({"support": "support-leads@example.com"})}
    procs, outs = [], []
    try:
        for i in range(2):
            outs.append(tmp_path / f"reports-{i}")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tests.scaleout.clocked_worker", str(clock)], cwd=ROOT,
                env={**env, "SPENDSTREAM_WORKER__WEB_PORT": str(free_port()),
                     "SPENDSTREAM_REPORTS__OUT_DIR": str(outs[-1]),
                     "SPENDSTREAM_WORKER__DATA_DIR": str(tmp_path / f"worker-{i}-data")},
                stdout=open(tmp_path / f"worker-{i}.log", "ab"), stderr=subprocess.STDOUT))

        def delivered(period: str) -> list[str]:
            return [p for p in posts if period in p]

        wait_until(lambda: delivered("week 2026-W46") and delivered("· 2026-10:"), 120, 0.3,
                   what="the first due reports delivered")
        time.sleep(3)  # ten more ticks of each worker: nothing runs twice
        teams = {p.split(" · ")[0].removeprefix(":bar_chart: ") for p in delivered("week 2026-W46")}
        assert len(teams) >= 4 and "support" not in teams  # support is routed to email instead
        assert len(delivered("week 2026-W46")) == len(teams)  # one summary per team, not one per worker
        assert len(delivered("· 2026-10:")) == len({p.split(" · ")[0] for p in delivered("· 2026-10:")})

        set_clock(clock, ms(2026, 11, 23, 6, 30))  # 06:30: this week's digest (W47) is due
        wait_until(lambda: delivered("week 2026-W47"), 60, 0.3, what="W47 delivered")
        time.sleep(3)
        assert len(delivered("week 2026-W47")) == len(teams)

        set_clock(clock, ms(2026, 12, 2, 7, 0))  # Wed 2 Dec 07:00: W48 (Mon 30 Nov) and November's review
        wait_until(lambda: delivered("week 2026-W48") and delivered("· 2026-11:"), 60, 0.3,
                   what="W48 and November delivered")
        time.sleep(3)
        assert len(delivered("week 2026-W48")) == len(teams)
        assert len(delivered("· 2026-11:")) == len({p.split(" · ")[0] for p in delivered("· 2026-11:")})
        assert all(p.poll() is None for p in procs), "a worker died"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    periods = ["weekly 2026-W46", "monthly 2026-10", "weekly 2026-W47", "weekly 2026-W48", "monthly 2026-11"]
    wrote = [runs_in(o) for o in outs]
    for period in periods:
        assert (period in wrote[0]) != (period in wrote[1]), (period, wrote)  # exactly one process wrote it
    assert wrote[0] | wrote[1] == set(periods)
    support = [m for to, m in mails if to == ["support-leads@example.com"]]
    for subject in ("weekly report 2026-W46", "monthly report 2026-10", "weekly report 2026-W47",
                    "weekly report 2026-W48", "monthly report 2026-11"):
        assert len([m for m in support if subject in m]) == 1, subject
    assert len(mails) == len(support) == 5
    print(f"\nreports written by worker 0: {sorted(wrote[0])}; by worker 1: {sorted(wrote[1])}")
