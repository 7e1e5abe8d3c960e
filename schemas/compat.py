"""Avro schema compatibility, as a Schema Registry judges it, for `spendstream schemas check` and CI.

`reader_problems(reader, writer)` lists why data written with `writer` cannot be read with `reader` under the
Avro schema-resolution rules (fields matched by name or alias; a reader field the writer lacks needs a default;
numeric promotions int -> long -> float -> double; string <-> bytes; unions branch by branch; enums by symbol).
FULL compatibility is both directions; the catalog's subjects must be FULL_TRANSITIVE: every version against
every earlier one, because producers and the worker upgrade independently and topics hold old data.
"""

from __future__ import annotations

from typing import Any, Iterable

from schemas.catalog import USAGE_SUBJECT, Catalog
from schemas.errors import IncompatibleSchema

__all__ = ["reader_problems", "full_problems", "catalog_problems", "candidate_problems", "model_problems",
           "assert_full_compatible"]

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_PROMOTIONS = {
    "int": {"long", "float", "double"}, "long": {"float", "double"}, "float": {"double"},
    "string": {"bytes"}, "bytes": {"string"},
}


def _collect(schema: Any, names: dict[str, dict], ns: str = "") -> None:
    """Index every named type (record, enum, fixed) by full and short name."""
    if isinstance(schema, list):
        for s in schema:
            _collect(s, names, ns)
    elif isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "error", "enum", "fixed"):
            ns = schema.get("namespace", ns)
            full = schema["name"] if "." in schema["name"] else f"{ns}.{schema['name']}".lstrip(".")
            names[full] = names[full.rsplit(".", 1)[-1]] = schema
            for f in schema.get("fields", []):
                _collect(f["type"], names, ns)
        elif t in ("array", "map"):
            _collect(schema.get("items", schema.get("values")), names, ns)
        elif isinstance(t, (dict, list)):
            _collect(t, names, ns)


def _deref(s: Any, names: dict[str, dict]) -> Any:
    while True:
        if isinstance(s, str) and s not in _PRIMITIVES:
            s = names.get(s, names.get(s.rsplit(".", 1)[-1], s))
        elif isinstance(s, dict) and (s.get("type") in _PRIMITIVES or isinstance(s.get("type"), (dict, list))) \
                and "fields" not in s:
            s = s["type"]  # {"type": "long", "logicalType": ...}: logical types resolve as their base type
        else:
            return s


def _kind(s: Any) -> str:
    return "union" if isinstance(s, list) else s if isinstance(s, str) else s["type"]


def _name_matches(r: dict, w: dict) -> bool:
    short = lambda n: n.rsplit(".", 1)[-1]  # noqa: E731
    return short(w["name"]) in {short(r["name"]), *(short(a) for a in r.get("aliases", []))}


def _check(r: Any, w: Any, path: str, rn: dict, wn: dict, seen: set) -> list[str]:
    r, w = _deref(r, rn), _deref(w, wn)
    rk, wk = _kind(r), _kind(w)
    if wk == "union":
        return [p for b in w for p in _check(r, b, path, rn, wn, seen)]
    if rk == "union":
        if any(not _check(b, w, path, rn, wn, seen) for b in r):
            return []
        return [f"{path}: no branch of the reader's union reads the writer's {wk}"]
    if rk != wk:
        if rk in _PROMOTIONS.get(wk, ()):
            return []
        return [f"{path}: writer type {wk} cannot be read as {rk}"]
    if rk in ("record", "error"):
        if not _name_matches(r, w):
            return [f"{path}: record {w['name']} cannot be read as {r['name']}"]
        if (id(r), id(w)) in seen:
            return []
        seen = seen | {(id(r), id(w))}
        wfields = {f["name"]: f for f in w["fields"]}
        problems = []
        for f in r["fields"]:
            wf = next((wfields[n] for n in (f["name"], *f.get("aliases", [])) if n in wfields), None)
            if wf is not None:
                problems += _check(f["type"], wf["type"], f"{path}.{f['name']}", rn, wn, seen)
            elif "default" not in f:
                problems.append(f"{path}.{f['name']}: reader field has no default and the writer does not write it")
        return problems
    if rk == "enum":
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            return [f"{path}: writer enum symbols {missing} unknown to the reader (and it has no default)"]
        return []
    if rk == "fixed":
        return [] if _name_matches(r, w) and r["size"] == w["size"] else [f"{path}: fixed name/size differ"]
    if rk == "array":
        return _check(r["items"], w["items"], f"{path}[]", rn, wn, seen)
    if rk == "map":
        return _check(r["values"], w["values"], f"{path}{{}}", rn, wn, seen)
    return []


def reader_problems(reader: Any, writer: Any, *, named: Iterable[Any] = ()) -> list[str]:
    """Why `reader` cannot read data written with `writer`; empty when it can. `named`: referenced schemas."""
    rn: dict[str, dict] = {}
    wn: dict[str, dict] = {}
    for s in named:
        _collect(s, rn)
        _collect(s, wn)
    _collect(reader, rn)
    _collect(writer, wn)
    return _check(reader, writer, "$", rn, wn, set())


def full_problems(old: Any, new: Any, *, named: Iterable[Any] = ()) -> list[str]:
    """FULL compatibility: new readers read old data (backward) and old readers read new data (forward)."""
    named = list(named)
    back = [f"backward (new reads old): {p}" for p in reader_problems(new, old, named=named)]
    fwd = [f"forward (old reads new): {p}" for p in reader_problems(old, new, named=named)]
    return back + fwd


def assert_full_compatible(old: Any, new: Any, *, named: Iterable[Any] = ()) -> None:
    """Raises IncompatibleSchema listing every problem."""
    problems = full_problems(old, new, named=named)
    if problems:
        raise IncompatibleSchema(problems)


def _refs(catalog: Catalog, kind: str) -> list[dict]:
    return [] if kind == "event" else [catalog.schema_json(catalog.latest(USAGE_SUBJECT, "event"))]


def catalog_problems(catalog: Catalog) -> list[str]:
    """Every subject's versions, FULL_TRANSITIVE; plus ids that are unique across the catalog."""
    problems = []
    ids = [e.schema_id for e in catalog.entries()]
    if len(ids) != len(set(ids)):
        problems.append(f"duplicate schema ids in the catalog: {sorted(ids)}")
    for subject, entries in catalog.subjects().items():
        for i, new in enumerate(entries):
            for old in entries[:i]:
                for p in full_problems(catalog.schema_json(old), catalog.schema_json(new), named=_refs(catalog, new.kind)):
                    problems.append(f"{subject} v{old.version} -> v{new.version}: {p}")
    return problems


def candidate_problems(catalog: Catalog, candidate: dict[str, Any], subject: str = USAGE_SUBJECT) -> list[str]:
    """A proposed new version of `subject`, checked FULL against every version already in the catalog."""
    entries = catalog.subjects().get(subject, [])
    return [
        f"{subject} v{old.version} -> candidate: {p}"
        for old in entries
        for p in full_problems(catalog.schema_json(old), candidate, named=_refs(catalog, old.kind))
    ]


def model_problems(catalog: Catalog) -> list[str]:
    """The pydantic UsageEvent must mirror the latest event schema field for field."""
    from schemas.models import UsageEvent

    avsc = {f["name"] for f in catalog.schema_json(catalog.latest(USAGE_SUBJECT, "event"))["fields"]}
    model = set(UsageEvent.model_fields)
    out = [f"field {n} is in the Avro schema but not in schemas.models.UsageEvent" for n in sorted(avsc - model)]
    return out + [f"field {n} is in schemas.models.UsageEvent but not in the Avro schema" for n in sorted(model - avsc)]
