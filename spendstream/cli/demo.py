"""`spendstream demo`: the whole product on the embedded default, end to end, in under two minutes.

Starts its own servers in a fresh state directory (own ports), creates topics, runs the worker and the API as
child processes, applies examples/budgets.yaml, publishes a synthetic stream while showing live spend per team,
then prints a summary read back from ClickHouse and the API's decisions. Ctrl-C or the end stops all of it.
With `--serve` the API (and its web console under /ui) stays up after the summary until Ctrl-C; the console URL and
a read key of team payments (and an admin key) are printed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from spendstream.cli._common import console
from spendstream.money import format_usd

__all__ = ["register"]

EXAMPLE_BUDGETS = Path(__file__).resolve().parents[2] / "examples" / "budgets.yaml"


def _env(state: Path, kafka_port: int, redis_port: int, api_port: int, web_port: int, ch_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SPENDSTREAM_SERVICES__STATE_DIR": str(state),
        "SPENDSTREAM_SERVICES__KAFKA_PORT": str(kafka_port),
        "SPENDSTREAM_SERVICES__REDIS_PORT": str(redis_port),
        "SPENDSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "SPENDSTREAM_REDIS__URL": f"redis://127.0.0.1:{redis_port}/0",
        "SPENDSTREAM_SERVICES__CLICKHOUSE_PORT": str(ch_port),
        "SPENDSTREAM_CLICKHOUSE__DSN": f"http://default:@127.0.0.1:{ch_port}",
        "SPENDSTREAM_API__PORT": str(api_port),
        "SPENDSTREAM_WORKER__WEB_PORT": str(web_port),
    })
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "spendstream", *args], env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(seconds: float, rate: int, state: Path, ports: tuple[int, int, int, int, int], serve: bool = False) -> int:
    import httpx
    from confluent_kafka import Producer

    from schemas.codec import UsageCodec
    from schemas.partition_keys import PartitionKeys
    from spendstream.cli.budgets import load_budgets, store_for
    from spendstream.cli.services import create_topics
    from spendstream.settings import load_settings
    from spendstream.synthetic import TEAMS, SyntheticStream
    from spendstream.windows import window_ids

    kafka_port, redis_port, api_port, web_port, ch_port = ports
    if state.exists():
        shutil.rmtree(state)
    env = _env(state.resolve(), *ports)
    os.environ.update({k: v for k, v in env.items() if k.startswith("SPENDSTREAM_")})
    settings = load_settings()
    t_start = time.monotonic()
    with ExitStack() as stack:
        from spendstream.cli.services import launcher_for

        launcher = launcher_for(settings)
        launcher.tied = True
        stack.callback(launcher.down)
        console.print("[bold]1/5[/] starting tansu (Kafka), redis-server, ClickHouse (the chdb engine over HTTP) ...")
        launcher.up()
        create_topics(settings)
        (state / "log").mkdir(parents=True, exist_ok=True)
        worker = _spawn(["worker"], env, state / "log" / "worker.log")
        stack.callback(_stop, worker)
        api = _spawn(["api"], env, state / "log" / "api.log")
        stack.callback(_stop, api)
        budgets = load_budgets(EXAMPLE_BUDGETS)
        store = store_for(settings)
        loop = asyncio.new_event_loop()
        stack.callback(loop.close)
        for b in budgets:
            loop.run_until_complete(store.put_budget(b))
        from enforcement.auth import ApiKeys

        api_key, _ = loop.run_until_complete(
            ApiKeys(store.r, settings.redis.prefix).create("demo-gateway", "check", ["*"], int(time.time() * 1000))
        )
        console.print(f"[bold]2/5[/] worker and API started; {len(budgets)} budgets applied from {EXAMPLE_BUDGETS.name}")

        codec = UsageCodec()
        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 20,
                             "compression.type": "lz4", "log.connection.close": False})
        stream = SyntheticStream(seed=int(time.time()))
        month = window_ids(int(time.time() * 1000)).month
        teams = list(TEAMS) + ["unallocated"]
        sent = 0

        def live_table() -> Table:
            cells = loop.run_until_complete(store.read_cells(("team", t, month) for t in teams))
            t = Table(title=f"live spend per team ({month}) — {sent:,} events published")
            t.add_column("team")
            t.add_column("events", justify="right")
            t.add_column("spend USD", justify="right")
            for team, c in zip(teams, cells):
                t.add_row(team, f"{c.get('events', 0):,}", format_usd(c.get("spend", 0), 4))
            return t

        console.print(f"[bold]3/5[/] publishing ~{rate} events/s for {seconds:.0f}s (Avro, Confluent framing) ...")
        keys = PartitionKeys(settings.kafka.partition_key, settings.kafka.key_shards)
        t0 = time.monotonic()
        with Live(live_table(), console=console, refresh_per_second=2) as live:
            next_draw = t0
            while time.monotonic() - t0 < seconds:
                tick = time.monotonic()
                now_ms = int(time.time() * 1000)
                for e in stream.events(rate // 10, now_ms):
                    producer.produce(settings.kafka.usage_topic, key=keys.key(e), value=codec.encode(e))
                sent += rate // 10
                producer.poll(0)
                if tick >= next_draw:
                    live.update(live_table())
                    next_draw = tick + 1.0
                time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
            producer.flush(30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                total = loop.run_until_complete(store.read_cells([("org", "all", month)]))[0].get("events", 0)
                live.update(live_table())
                if total >= sent:
                    break
                time.sleep(0.5)

        console.print("[bold]4/5[/] asking the enforcement API (POST /v1/check) ...")
        decisions = {}
        for team in ("payments", "search"):
            body = {"team": team, "provider": "openai", "model": "gpt-4o", "estimated_input_tokens": 2000,
                    "estimated_output_tokens": 500, "environment": "production"}
            for _ in range(50):
                try:
                    r = httpx.post(f"http://127.0.0.1:{api_port}/v1/check", json=body, timeout=5,
                                   headers={"authorization": f"Bearer {api_key}"})
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            decisions[team] = r.json()
            console.print(f"  {team:10s} -> [bold]{r.json()['decision']}[/]: {r.json()['reason']}")

        _stop(worker)  # its last ClickHouse flush: the summary below is complete
        console.print("[bold]5/5[/] summary read back from ClickHouse:")
        from sinks.clickhouse.schema import connect

        ch = connect(settings.clickhouse.dsn, settings.clickhouse.timeout_s)
        rows = ch.query(
            f"SELECT team, count(), sum(cost), countIf(fully_tagged = 0) FROM {settings.clickhouse.database}.priced_events FINAL "
            "GROUP BY team ORDER BY sum(cost) DESC"
        ).result_rows
        t = Table(title="ClickHouse: priced events by team")
        for col in ("team", "events", "cost USD", "untagged events"):
            t.add_column(col, justify="left" if col == "team" else "right")
        for team, n, cost, untagged in rows:
            t.add_row(team, f"{n:,}", format_usd(int(cost), 4), f"{untagged:,}")
        console.print(t)
        fired = ch.query(
            f"SELECT budget_id, groupArray(concat(kind, if(threshold > 0, concat(' ', toString(threshold)), ''))) "
            f"FROM (SELECT * FROM {settings.clickhouse.database}.alerts FINAL ORDER BY fired_at, threshold) GROUP BY budget_id"
        ).result_rows
        for budget_id, kinds in fired:
            console.print(f"alerts for {budget_id}: {', '.join(k.removeprefix('budget_') for k in kinds)}")
        total_ch = sum(int(r[2]) for r in rows)
        redis_total = loop.run_until_complete(store.read_cells([("org", "all", month)]))[0].get("spend", 0)
        console.print(f"total: ClickHouse {format_usd(total_ch, 9)} USD, Redis {format_usd(redis_total, 9)} USD "
                      f"({'equal' if total_ch == redis_total else 'DIFFERENT'}), {sent:,} events published")
        console.print(f"demo wall time {time.monotonic() - t_start:.1f}s; logs in {state / 'log'}")
        console.print(f"analysts query ClickHouse over HTTP, e.g. curl 'http://127.0.0.1:{ch_port}/?user=analyst&"
                      f"password=analyst' --data-binary 'SELECT team, sum(cost) FROM "
                      f"{settings.clickhouse.database}.priced_events GROUP BY team' (while the demo runs)")
        ok = decisions["payments"]["decision"] == "deny" and all(int(r[2]) > 0 for r in rows)
        if serve:
            serve_console(loop, ApiKeys(store.r, settings.redis.prefix), api, api_port)
        else:
            console.print("web console: run [bold]spendstream demo --serve[/] (the API stays up, the console URL and "
                          "a read key are printed)")
        return 0 if ok else 1


def serve_console(loop, keys, api: subprocess.Popen, api_port: int) -> None:
    """Keep the API up until Ctrl-C (or until it exits); print the console URL and keys to sign in with."""
    now = int(time.time() * 1000)
    lead, _ = loop.run_until_complete(keys.create("demo-team-lead", "read", ["payments"], now))
    admin, _ = loop.run_until_complete(keys.create("demo-admin", "admin", (), now))
    console.print(f"[bold]web console:[/] http://127.0.0.1:{api_port}/ui/  (sign in by pasting a key)", soft_wrap=True)
    console.print(f"  read key, team payments: {lead}", soft_wrap=True, highlight=False)
    console.print(f"  admin key, every team and budget edits: {admin}", soft_wrap=True, highlight=False)
    console.print("the API stays up until Ctrl-C", soft_wrap=True)
    try:
        while api.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("Ctrl-C: stopping the API and the servers")


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        seconds: float = typer.Option(30.0, help="How long to publish"),
        rate: int = typer.Option(2000, help="Events per second to publish"),
        state_dir: Path = typer.Option(Path(".spendstream/demo"), help="Fresh state directory (wiped first)"),
        kafka_port: int = typer.Option(19192), redis_port: int = typer.Option(16479),
        api_port: int = typer.Option(18180), web_port: int = typer.Option(16166),
        clickhouse_port: int = typer.Option(18223),
        serve: bool = typer.Option(False, "--serve", help="Keep the API and its web console (/ui) up after the demo "
                                   "until Ctrl-C; prints the console URL and a read key"),
    ) -> None:
        """Run spendstream end to end on embedded servers: publish a synthetic stream, watch spend, see a deny."""
        try:
            code = run_demo(seconds, rate, state_dir, (kafka_port, redis_port, api_port, web_port, clickhouse_port), serve)
        except KeyboardInterrupt:
            console.print("interrupted: everything the demo started is stopped")
            code = 130
        raise typer.Exit(code)
