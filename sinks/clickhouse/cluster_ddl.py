"""Single-node migration DDL -> ClickHouse cluster DDL. Pure text transforms: no I/O, no client.

With `SPENDSTREAM_CLICKHOUSE__CLUSTER=<name>` every migration statement is rewritten (docs/scaling.md, "ClickHouse
cluster"):

- `CREATE DATABASE|TABLE|VIEW|MATERIALIZED VIEW|DICTIONARY x ...` gets `ON CLUSTER <name>` after its name.
- A table with a `<X>MergeTree[(args)]` engine becomes two tables:
  `x_local ON CLUSTER` with `Replicated<X>MergeTree('/clickhouse/tables/{shard}/{db}/x', '{replica}'[, args])` (the
  same columns, PARTITION BY, ORDER BY, SETTINGS), and `x ON CLUSTER AS x_local ENGINE = Distributed('<name>', db,
  'x_local', <sharding key>)` for reads (and for the writer: see writer.py). `{shard}` / `{replica}` are the server's
  macros; `{db}` is the migration placeholder (the database name).
- Sharding key: `SHARDING_KEYS[x]` when stated, else `cityHash64(<the table's ORDER BY key>)` (`rand()` for
  `ORDER BY tuple()`): rows equal in the sorting key land on one shard, so ReplacingMergeTree / SummingMergeTree
  collapse them there and `FINAL` through the Distributed table stays correct.
- A materialized view must use `TO target`: it is created ON CLUSTER, reads the `_local` source and writes the
  `_local` target, so each shard aggregates the rows inserted on it (reports re-aggregate with GROUP BY).
- `ALTER TABLE x cmds` on a replicated table goes to `x_local ON CLUSTER`; column commands (ADD/DROP/MODIFY/RENAME/
  COMMENT/CLEAR COLUMN) are repeated on the Distributed `x` so it exposes the new columns.
  `non_replicated_deduplication_window` becomes `replicated_deduplication_window` (Replicated tables keep insert
  tokens in Keeper natively; the setting only keeps the migration's intent explicit).
- `DROP TABLE|VIEW x` goes ON CLUSTER (and to `x_local` too); `INSERT` is left alone (it goes through Distributed).
  Any other statement shape raises ClusterDDLError, so a new migration the transform cannot map fails its unit test.
"""

from __future__ import annotations

import re
from typing import Iterable

__all__ = ["ClusterDDLError", "ClusterDDL", "check_cluster", "cluster_statements", "replicated_tables", "sharding_key", "SHARDING_KEYS", "LOCAL_SUFFIX",
           "ZK_PATH"]

LOCAL_SUFFIX = "_local"
ZK_PATH = "/clickhouse/tables/{shard}/{db}/%s"
# priced_events and dead_letters by Kafka partition: one partition's rows live on one shard, so the writer's guards
# (the highest kafka_offset per partition) are answered by the shard it wrote to, and every insert (one partition's
# slice) goes to exactly one shard, with its deduplication token.
_BY_PARTITION = "cityHash64(kafka_topic, kafka_partition)"
SHARDING_KEYS = {"priced_events": _BY_PARTITION, "dead_letters": _BY_PARTITION}

_NAME = r"(?P<name>(?:[\w{}]+\.)?[\w{}]+)"
_CREATE = re.compile(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?P<kind>DATABASE|TABLE|MATERIALIZED\s+VIEW|VIEW|DICTIONARY)"
                     r"\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME, re.I)
_ALTER = re.compile(r"\s*ALTER\s+TABLE\s+" + _NAME + r"\s+", re.I)
_DROP = re.compile(r"\s*DROP\s+(?:TABLE|VIEW|DICTIONARY)\s+(?:IF\s+EXISTS\s+)?" + _NAME, re.I)
_INSERT = re.compile(r"\s*INSERT\s+INTO\b", re.I)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?P<engine>(?P<family>\w*)MergeTree)\b", re.I)
_TO = re.compile(r"\bTO\s+" + _NAME, re.I)
_SOURCE = re.compile(r"\b(?P<kw>FROM|JOIN)\s+" + _NAME, re.I)
_ORDER = re.compile(r"\bORDER\s+BY\b", re.I)
_CLAUSE = re.compile(r"\b(?:PRIMARY\s+KEY|SAMPLE\s+BY|TTL|SETTINGS|PARTITION\s+BY|COMMENT)\b", re.I)
_COMMAND = re.compile(r"(?:ADD|DROP|MODIFY|RENAME|CLEAR|COMMENT|MATERIALIZE|UPDATE|DELETE|FREEZE|UNFREEZE|ATTACH|"
                      r"DETACH|REPLACE|MOVE|FETCH|RESET|REMOVE|APPLY)\b", re.I)
_COLUMN_COMMAND = re.compile(r"(?:ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.I)
_NON_REPLICATED_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\b", re.I)


class ClusterDDLError(ValueError):
    """A migration statement with no cluster form here (extend cluster_ddl.py, or write it cluster-neutral)."""


def check_cluster(cluster: str) -> str:
    """`cluster` if it is an identifier (it is pasted into SQL), else ClusterDDLError."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cluster):
        raise ClusterDDLError(f"cluster name {cluster!r} must be an identifier")
    return cluster


def _mask(sql: str) -> str:
    """`sql` with string literals, quoted identifiers and comments blanked (same length), so keyword searches and
    bracket matching on the mask give positions valid in `sql`."""
    out, i, n = list(sql), 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'`\"":
            j = i + 1
            while j < n and sql[j] != c:
                j += 2 if sql[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                out[k] = "_"
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out[i:j] = " " * (j - i)
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out[i:j] = " " * (j - i)
            i = j
        else:
            i += 1
    return "".join(out)


def _close(masked: str, start: int) -> int:
    """Index of the bracket closing the one at `start`."""
    depth = 0
    for i in range(start, len(masked)):
        depth += {"(": 1, ")": -1}.get(masked[i], 0)
        if depth == 0:
            return i
    raise ClusterDDLError(f"unbalanced brackets in: {masked[start:start + 80]!r}")


def _split_top(text: str) -> list[str]:
    """`text` split at commas outside brackets, literals and comments."""
    masked, parts, depth, last = _mask(text), [], 0, 0
    for i, c in enumerate(masked):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(text[last:i].strip())
            last = i + 1
    parts.append(text[last:].strip())
    return [p for p in parts if p]


def _base(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _db(name: str) -> str:
    return f"'{name.rsplit('.', 1)[0]}'" if "." in name else "currentDatabase()"


def _merge_tree_engine(stmt: str) -> re.Match | None:
    m = _ENGINE.search(_mask(stmt))
    return m if m and not m.group("family").lower().startswith("replicated") else None


def replicated_tables(statements: Iterable[str]) -> frozenset[str]:
    """Names (without database) of the tables the cluster form makes Replicated + Distributed: every
    `CREATE TABLE` with a (non-replicated) *MergeTree engine in `statements` (all migrations, not only pending)."""
    names = set()
    for stmt in statements:
        m = _CREATE.match(stmt)
        if m and m.group("kind").upper() == "TABLE" and _merge_tree_engine(stmt):
            names.add(_base(m.group("name")))
    return frozenset(names)


def sharding_key(table: str, create_stmt: str) -> str:
    """The Distributed sharding key of `table`: stated in SHARDING_KEYS, else a hash of its ORDER BY key."""
    if table in SHARDING_KEYS:
        return SHARDING_KEYS[table]
    masked = _mask(create_stmt)
    engine = _ENGINE.search(masked)
    order = _ORDER.search(masked, engine.end() if engine else 0)
    if not order:
        return "rand()"
    end = len(masked)
    i, depth = order.end(), 0
    while i < len(masked):
        depth += {"(": 1, ")": -1}.get(masked[i], 0)
        if depth == 0 and _CLAUSE.match(masked, i):
            end = i
            break
        i += 1
    key = create_stmt[order.end():end].strip()
    if key.startswith("(") and _close(_mask(key), 0) == len(key) - 1:
        key = key[1:-1].strip()
    return "rand()" if key.lower() in ("", "tuple()") else f"cityHash64({key})"


class ClusterDDL:
    """Rewrites single-node migration statements for cluster `cluster`; `replicated` = replicated_tables(...)."""

    def __init__(self, cluster: str, replicated: Iterable[str]) -> None:
        self.cluster = check_cluster(cluster)
        self.replicated = frozenset(replicated)
        self.on = f" ON CLUSTER {cluster}"

    def _local(self, name: str) -> str:
        return name + LOCAL_SUFFIX if _base(name) in self.replicated else name

    def statements(self, stmt: str) -> list[str]:
        """The cluster form of one single-node statement (one or more statements)."""
        stmt = stmt.strip()
        if m := _CREATE.match(stmt):
            kind = " ".join(m.group("kind").upper().split())
            if kind == "TABLE" and _merge_tree_engine(stmt):
                return self._table(stmt, m)
            if kind == "MATERIALIZED VIEW":
                return [self._view(stmt, m)]
            return [stmt[:m.end()] + self.on + stmt[m.end():]]
        if m := _ALTER.match(stmt):
            return self._alter(stmt, m)
        if m := _DROP.match(stmt):
            head, tail = stmt[:m.start("name")], stmt[m.end():]
            name = m.group("name")
            names = [name, name + LOCAL_SUFFIX] if _base(name) in self.replicated else [name]
            return [f"{head}{n}{self.on}{tail}" for n in names]
        if _INSERT.match(stmt):
            return [stmt]
        raise ClusterDDLError(f"no cluster form for statement: {stmt[:120]!r}")

    def _table(self, stmt: str, m: re.Match) -> list[str]:
        name = m.group("name")
        table, local = _base(name), name + LOCAL_SUFFIX
        masked = _mask(stmt)
        e = _merge_tree_engine(stmt)
        path = f"'{ZK_PATH % table}', '{{replica}}'"
        after = e.end()
        args = ""
        rest_at = after
        paren = re.compile(r"\s*\(").match(masked, after)
        if paren:
            close = _close(masked, paren.end() - 1)
            args = stmt[paren.end():close].strip()
            rest_at = close + 1
        engine = f"ENGINE = Replicated{e.group('engine')}({path}{', ' + args if args else ''})"
        head = stmt[:m.start("name")] + local + self.on
        create_local = head + stmt[m.end():e.start()] + engine + stmt[rest_at:]
        ine = "IF NOT EXISTS " if re.search(r"\bIF\s+NOT\s+EXISTS\b", masked[:m.start("name")], re.I) else ""
        create_dist = (f"CREATE TABLE {ine}{name}{self.on} AS {local} ENGINE = Distributed('{self.cluster}', "
                       f"{_db(name)}, '{_base(local)}', {sharding_key(table, stmt)})")
        return [create_local, create_dist]

    def _view(self, stmt: str, m: re.Match) -> str:
        masked = _mask(stmt)
        to = _TO.search(masked, m.end())
        as_ = re.compile(r"\bAS\b", re.I).search(masked, m.end())
        if not to or (as_ and as_.start() < to.start()):
            raise ClusterDDLError(f"materialized view {m.group('name')} needs `TO <table>` to run on a cluster")
        out, last = [stmt[:m.end()], self.on, stmt[m.end():to.start("name")], self._local(to.group("name"))], to.end()
        for s in _SOURCE.finditer(masked, to.end()):
            out += [stmt[last:s.start("name")], self._local(s.group("name"))]
            last = s.end()
        return "".join(out) + stmt[last:]

    def _alter(self, stmt: str, m: re.Match) -> list[str]:
        name = m.group("name")
        if _base(name) not in self.replicated:
            return [stmt[:m.end("name")] + self.on + stmt[m.end("name"):]]
        commands: list[str] = []
        for part in _split_top(stmt[m.end():]):
            if commands and not _COMMAND.match(part):
                commands[-1] += ", " + part  # MODIFY SETTING a = 1, b = 2 / UPDATE a = 1, b = 2 WHERE ...
            else:
                commands.append(part)
        local = [_NON_REPLICATED_WINDOW.sub("replicated_deduplication_window", c) for c in commands]
        out = [f"ALTER TABLE {name}{LOCAL_SUFFIX}{self.on} " + ", ".join(local)]
        columns = [c for c in commands if _COLUMN_COMMAND.match(c)]
        if columns:
            out.append(f"ALTER TABLE {name}{self.on} " + ", ".join(columns))
        return out


def cluster_statements(statements: Iterable[str], cluster: str, replicated: Iterable[str]) -> list[str]:
    """Every statement's cluster form, in order."""
    ddl = ClusterDDL(cluster, replicated)
    return [out for stmt in statements for out in ddl.statements(stmt)]
