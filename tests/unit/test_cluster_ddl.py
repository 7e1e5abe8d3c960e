"""Cluster DDL (sinks/clickhouse/cluster_ddl.py): every statement generated from every migration file is parsed by
the real ClickHouse engine (chdb in-process, `formatQuery`), and its structure is checked on the engine's own
formatting: ON CLUSTER, Replicated engines with their Keeper path, Distributed tables with the stated sharding key,
materialized views on the local tables. Without a cluster the statements are byte-identical to the single-node DDL.
A real multi-node ClickHouse (Keeper, remote_servers) cannot run here: parsing is the check."""

from __future__ import annotations

import re

import pytest

from sinks.clickhouse.cluster_ddl import ClusterDDL, ClusterDDLError, sharding_key
from sinks.clickhouse.schema import MIGRATIONS_DIR, MIGRATIONS_TABLE, cluster_ddl, migrate, render
from sinks.clickhouse.writer import ClickHouseWriter

DB, CLUSTER = "spendstream", "prod_cluster"
FILES = sorted(MIGRATIONS_DIR.glob("*.sql"))


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """The real ClickHouse engine in-process (chdb: one per process, so one session for this module)."""
    from chdb import session

    sess = session.Session(str(tmp_path_factory.mktemp("chdb")))
    yield sess
    sess.close()


@pytest.fixture(scope="module")
def fmt(engine):
    """Parse one statement with the real engine; returns its canonical text (raises on a syntax error)."""
    sess = engine
    has_format = sess.query("SELECT count() FROM system.functions WHERE name = 'formatQuery'", "CSV").bytes()
    use_format = has_format.strip() == b"1"

    def parse(stmt: str) -> str:
        if use_format:
            escaped = stmt.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")  # the "escaped" format
            out = sess.query("SELECT formatQuery({q:String})", "TSVRaw", params={"q": escaped}).bytes().decode()
        else:  # older engines: EXPLAIN AST parses any statement
            out = sess.query(f"EXPLAIN AST {stmt}", "TSVRaw").bytes().decode()
        return " ".join(out.split())

    return parse


def _old_statements(sql: str) -> list[str]:
    """The single-node splitter as it was before the cluster work (a frozen copy: the default must not move)."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def _ddl() -> ClusterDDL:
    return cluster_ddl(CLUSTER)


def _merge_tree_tables() -> dict[str, str]:
    """table -> its single-node CREATE statement, over every migration file."""
    out = {}
    for path in FILES:
        for stmt in _old_statements(path.read_text()):
            m = re.match(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+).*ENGINE\s*=\s*\w*MergeTree", stmt, re.S)
            if m:
                out[m.group(1)] = stmt
    return out


class Recorder:
    """A clickhouse-connect stand-in recording what migrate / the writer send."""

    def __init__(self):
        self.commands, self.inserts, self.queries = [], [], []

    def command(self, sql):
        self.commands.append(sql)

    def create_insert_context(self, table, column_names=None, column_types=None, settings=None, data=None):
        return type("Ctx", (), {"table": table, "settings": settings, "data": data, "column_types": None})()

    def insert(self, table=None, rows=None, column_names=None, settings=None, context=None):
        if context is not None:  # the writer's path: one context per INSERT
            table, settings = context.table, context.settings
        self.inserts.append((table, settings))

    def query(self, sql, parameters=None):
        self.queries.append(sql)
        return type("R", (), {"result_rows": []})()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_single_node_statements_are_byte_identical(path):
    text = path.read_text()
    assert render(text, DB) == [s.replace("{db}", DB) for s in _old_statements(text)]


def test_single_node_migrate_sends_what_it_always_sent():
    rec = Recorder()
    migrate(rec, DB)
    expected = [f"CREATE DATABASE IF NOT EXISTS {DB}",
                f"CREATE TABLE IF NOT EXISTS {DB}.schema_migrations (version String, applied_at DateTime DEFAULT now()) "
                "ENGINE = ReplacingMergeTree ORDER BY version"]
    for path in FILES:
        expected += [s.replace("{db}", DB) for s in _old_statements(path.read_text())]
    assert rec.commands == expected
    assert rec.inserts == [(f"{DB}.schema_migrations", None)] * len(FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_cluster_statement_parses_and_runs_on_cluster(path, fmt):
    stmts = render(path.read_text(), DB, _ddl())
    assert stmts
    for stmt in stmts:
        canonical = fmt(stmt)  # raises on a syntax error
        assert f"ON CLUSTER {CLUSTER}" in canonical, canonical
        assert "non_replicated_deduplication_window" not in canonical


def test_merge_tree_tables_become_replicated_local_plus_distributed(fmt):
    ddl = _ddl()
    tables = _merge_tree_tables()
    assert {"priced_events", "cost_hourly", "activity_daily", "alerts", "cost_corrections"} <= set(tables)
    for table, stmt in tables.items():
        local, dist = [fmt(s.replace("{db}", DB)) for s in ddl.statements(stmt)]
        engine = re.search(r"ENGINE = (\w*)MergeTree\b", stmt).group(1)
        assert local.startswith(f"CREATE TABLE IF NOT EXISTS {DB}.{table}_local ON CLUSTER {CLUSTER} ("), local
        assert (f"ENGINE = Replicated{engine}MergeTree('/clickhouse/tables/{{shard}}/{DB}/{table}', '{{replica}}'"
                in local), local
        # the same sorting key and partitioning on the local table
        for clause in ("ORDER BY", "PARTITION BY"):
            single = re.search(clause + r" (.*?)(?: PARTITION BY| ORDER BY| SETTINGS|$)", fmt(stmt.replace("{db}", DB)))
            if single:
                assert f"{clause} {single.group(1)}" in local
        key = sharding_key(table, stmt)
        assert dist == (f"CREATE TABLE IF NOT EXISTS {DB}.{table} ON CLUSTER {CLUSTER} AS {DB}.{table}_local "
                        f"ENGINE = Distributed('{CLUSTER}', '{DB}', '{table}_local', {fmt('SELECT ' + key)[7:]})")


def test_stated_sharding_keys():
    tables = _merge_tree_tables()
    # one Kafka partition on one shard: the writer's max-offset guard and every insert block stay on one shard
    assert sharding_key("priced_events", tables["priced_events"]) == "cityHash64(kafka_topic, kafka_partition)"
    # others: the sorting key, so rows a Replacing/SummingMergeTree collapses live on one shard
    assert sharding_key("alerts", tables["alerts"]) == "cityHash64(team, alert_id)"
    assert sharding_key("cost_hourly", tables["cost_hourly"]).startswith("cityHash64(team, hour, use_case, model")
    assert sharding_key("x", "CREATE TABLE x (a Int8) ENGINE = MergeTree ORDER BY tuple()") == "rand()"
    assert sharding_key("x", "CREATE TABLE x (a Int8) ENGINE = MergeTree ORDER BY a SETTINGS index_granularity = 1") \
        == "cityHash64(a)"


def test_materialized_views_read_and_write_local_tables(fmt):
    ddl, views = _ddl(), 0
    for path in FILES:
        for stmt in _old_statements(path.read_text()):
            if not stmt.startswith("CREATE MATERIALIZED VIEW"):
                continue
            views += 1
            (out,) = ddl.statements(stmt)
            canonical = fmt(out.replace("{db}", DB))
            assert f"ON CLUSTER {CLUSTER} TO {DB}." in canonical
            target = re.search(rf"TO {DB}\.(\w+)", canonical).group(1)
            sources = re.findall(rf"(?:FROM|JOIN) {DB}\.(\w+)", canonical)
            assert target.endswith("_local") and sources and all(s.endswith("_local") for s in sources), canonical
    assert views >= 3  # cost_hourly_mv, activity_daily_mv, cost_corrections_mv


def test_dedup_window_maps_to_the_replicated_setting_on_local_tables(fmt):
    out = render((MIGRATIONS_DIR / "0006_insert_dedup.sql").read_text(), DB, _ddl())
    assert [fmt(s) for s in out] == [
        f"ALTER TABLE {DB}.{t}_local ON CLUSTER {CLUSTER} (MODIFY SETTING replicated_deduplication_window = 10000)"
        for t in ("priced_events", "cost_hourly", "activity_daily")]


def test_generic_shapes(fmt):
    """Shapes other migrations use (0004/0005 on other branches): column ALTERs reach the Distributed table too."""
    ddl = ClusterDDL(CLUSTER, {"budget_snapshots", "month_closes"})
    alter = ("ALTER TABLE {db}.budget_snapshots\n    ADD COLUMN IF NOT EXISTS kind LowCardinality(String),\n"
             "    ADD COLUMN IF NOT EXISTS changed_at DateTime64(3, 'UTC'),\n    MODIFY ORDER BY (budget_id, kind)")
    local, dist = [fmt(s.replace("{db}", DB)) for s in ddl.statements(alter)]
    assert local.startswith(f"ALTER TABLE {DB}.budget_snapshots_local ON CLUSTER {CLUSTER}")
    assert "MODIFY ORDER BY" in local and local.count("ADD COLUMN") == 2
    assert dist.startswith(f"ALTER TABLE {DB}.budget_snapshots ON CLUSTER {CLUSTER}")
    assert "MODIFY ORDER BY" not in dist and dist.count("ADD COLUMN") == 2
    (settings,) = ddl.statements("ALTER TABLE {db}.month_closes MODIFY SETTING non_replicated_deduplication_window = 5, "
                                 "merge_with_ttl_timeout = 60")
    assert fmt(settings.replace("{db}", DB)).endswith(
        "(MODIFY SETTING replicated_deduplication_window = 5, merge_with_ttl_timeout = 60)")
    plain = "CREATE TABLE IF NOT EXISTS {db}.month_closes (m Date COMMENT 'not a MergeTree') ENGINE = MergeTree ORDER BY m"
    local, dist = [fmt(s.replace("{db}", DB)) for s in ddl.statements(plain)]
    assert f"ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{DB}/month_closes', '{{replica}}')" in local
    assert dist.endswith("'month_closes_local', cityHash64(m))")
    for other in ("CREATE TABLE {db}.scratch (a Int8) ENGINE = Memory", "CREATE VIEW {db}.v AS SELECT 1",
                  "DROP TABLE IF EXISTS {db}.month_closes"):
        assert all(f"ON CLUSTER {CLUSTER}" in fmt(s.replace("{db}", DB)) for s in ddl.statements(other))
    assert len(ddl.statements("DROP TABLE IF EXISTS {db}.month_closes")) == 2
    with pytest.raises(ClusterDDLError, match="TO <table>"):
        ddl.statements("CREATE MATERIALIZED VIEW {db}.v ENGINE = MergeTree ORDER BY a AS SELECT 1 AS a")
    with pytest.raises(ClusterDDLError, match="no cluster form"):
        ddl.statements("OPTIMIZE TABLE {db}.month_closes FINAL")
    with pytest.raises(ClusterDDLError, match="identifier"):
        ClusterDDL("prod; DROP", set())


def test_cluster_migrate_records_versions_synchronously():
    rec = Recorder()
    migrate(rec, DB, CLUSTER)
    assert rec.commands[0] == f"CREATE DATABASE IF NOT EXISTS {DB} ON CLUSTER {CLUSTER}"
    assert rec.commands[1].startswith(f"CREATE TABLE IF NOT EXISTS {DB}.schema_migrations_local ON CLUSTER {CLUSTER}")
    assert rec.commands[2].endswith(f"Distributed('{CLUSTER}', '{DB}', 'schema_migrations_local', cityHash64(version))")
    assert all(f"ON CLUSTER {CLUSTER}" in c for c in rec.commands)
    assert rec.inserts == [(f"{DB}.schema_migrations", {"insert_distributed_sync": 1})] * len(FILES)
    assert MIGRATIONS_TABLE.startswith("CREATE TABLE IF NOT EXISTS {db}.schema_migrations ")


def test_writer_guard_reads_every_replica_and_inserts_synchronously(fmt):
    single, clustered = Recorder(), Recorder()
    for rec, cluster in ((single, None), (clustered, CLUSTER)):
        w = ClickHouseWriter(rec, DB, cluster=cluster)
        w.written_offsets("t")
        w.add([[0] * 60], "t", 0, 5)
        w.add_ledger("alerts", ("alert_id",), [["a"]])
        w.add_dead_letters("t", 0, [[0, "t", 0, 3, -1, "truncated", "", "", "", "", "bytes:00:-1"]])
        w.flush()
    assert "FROM spendstream.priced_events WHERE" in single.queries[0]
    assert "FROM spendstream.dead_letters WHERE" in single.queries[1]
    assert all(s is None or "insert_distributed_sync" not in s for _, s in single.inserts)
    guard = clustered.queries[0]
    assert f"FROM clusterAllReplicas('{CLUSTER}', {DB}.priced_events_local) WHERE" in guard
    assert "clusterAllReplicas" in fmt(guard.replace("%(t)s", "'t'"))
    assert f"FROM clusterAllReplicas('{CLUSTER}', {DB}.dead_letters_local) WHERE" in clustered.queries[1]
    assert clustered.inserts[0] == (f"{DB}.alerts", {"insert_distributed_sync": 1})
    table, settings = clustered.inserts[1]  # dead letters before the priced rows (sinks/clickhouse/dead_letters.py)
    assert table == f"{DB}.dead_letters" and settings["insert_distributed_sync"] == 1
    assert settings["insert_deduplication_token"] == "t:0:3-3:1"
    table, settings = clustered.inserts[2]
    assert table == f"{DB}.priced_events" and settings["insert_distributed_sync"] == 1
    assert settings["insert_deduplication_token"] == "t:0:0-5:1"


def test_cluster_setting(monkeypatch):
    from spendstream.errors import ConfigError
    from spendstream.settings import load_settings

    assert load_settings().clickhouse.cluster is None
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__CLUSTER", "prod_cluster")
    assert load_settings().clickhouse.cluster == "prod_cluster"
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__CLUSTER", "prod cluster'")
    with pytest.raises(ConfigError, match="SPENDSTREAM_CLICKHOUSE__CLUSTER"):
        load_settings()


def test_the_parser_rejects_misplaced_cluster_clauses(fmt):
    """The check has teeth: the engine's parser refuses what a wrong transform would emit."""
    for bad in ("CREATE TABLE d.t (a Int8) ON CLUSTER c ENGINE = MergeTree ORDER BY a",
                "CREATE MATERIALIZED VIEW d.v TO d.t ON CLUSTER c AS SELECT 1",
                "ALTER TABLE d.t MODIFY SETTING x = 1 ON CLUSTER c",
                "CREATE TABLE d.t (a Int8) ENGINE = ReplicatedMergeTree('/p', '{replica}' ORDER BY a"):
        with pytest.raises(Exception, match="(?i)syntax"):
            fmt(bad)


def test_the_cluster_schema_executes_on_one_node_with_the_cluster_parts_stripped(engine):
    """Beyond parsing: run the cluster schema on the real engine with ON CLUSTER removed and Replicated engines made
    plain (no Keeper here). The engine then checks what parsing cannot: views select columns the `_local` targets
    have, the Distributed sharding keys are integer expressions over existing columns (ClickHouse checks that
    before it looks the cluster up: error 701, cluster not found, is the only failure allowed)."""
    sess = engine
    ddl = _ddl()
    replicated = re.compile(r"Replicated(\w*MergeTree)\('/clickhouse/tables/\{shard\}/\w+/\w+', '\{replica\}'(?:, )?")
    stmts = render(MIGRATIONS_TABLE, DB, ddl) + [s for p in FILES for s in render(p.read_text(), DB, ddl)]
    distributed, missing = 0, set()
    sess.query(f"CREATE DATABASE {DB}")
    try:
        for stmt in stmts:
            plain = replicated.sub(r"\1(", stmt.replace(f" ON CLUSTER {CLUSTER}", ""))
            target = re.match(r"(?:CREATE TABLE IF NOT EXISTS|ALTER TABLE) (\S+)", plain)
            if target and target.group(1) in missing:
                continue  # a column ALTER of a Distributed table the engine could not attach without the cluster
            try:
                sess.query(plain)
            except Exception as exc:
                assert "ENGINE = Distributed(" in plain and "Code: 701" in str(exc), (plain, exc)
                distributed += 1
                missing.add(target.group(1))
        assert distributed == len(_merge_tree_tables()) + 1  # every MergeTree table and schema_migrations
        views = sess.query(f"SELECT name, create_table_query FROM system.tables WHERE database = '{DB}' "
                           "AND engine = 'MaterializedView'", "JSONCompact").bytes().decode()
        assert "cost_hourly_mv" in views and "priced_events_local" in views
    finally:
        sess.query(f"DROP DATABASE IF EXISTS {DB}")
