"""Ownership rules applied on top of event tags (pure; parsed from an already-loaded YAML/JSON dict).

The seed's rules, in file order, first match wins:
  employee usage      -> their department            (owner fields taken from the event: "{attributes.department}")
  product usage       -> the product owner           ("{attributes.product_owner}")
  internal tooling    -> the platform team           (fixed owner)
  shared services     -> split proportionally by a stated key (fixed shares, e.g. last month's token volume)
Example file: examples/allocation.yaml. A rule's `when` matches event fields or `attributes.<name>`; `"*"`
matches any non-empty value. A template that resolves to nothing leaves the tag as it was (and a missing
required tag still books to `unallocated`).

A split divides every quantity and every cost component by largest remainder, so the shares always sum to the
unsplit event exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from spendstream.errors import ConfigError
from spendstream.pricing import PricedCost, split_nanos
from spendstream.validation import QUANTITY_FIELDS

__all__ = ["Rule", "AllocationRules", "parse_rules"]

_OWNER_FIELDS = ("team", "cost_center", "use_case", "environment", "workload_type")


def _get(e: Mapping[str, Any], path: str) -> Any:
    if path.startswith("attributes."):
        return (e.get("attributes") or {}).get(path.removeprefix("attributes."))
    return e.get(path)


def _render(template: str, e: Mapping[str, Any]) -> str | None:
    if template.startswith("{") and template.endswith("}"):
        v = _get(e, template[1:-1])
        return str(v) if v else None
    return template


@dataclass(frozen=True)
class Rule:
    name: str
    when: tuple[tuple[str, str], ...]
    owner: tuple[tuple[str, str], ...] = ()
    split: tuple[tuple[str, int], ...] = ()  # (team, weight)
    split_key: str = ""

    def matches(self, e: Mapping[str, Any]) -> bool:
        for path, want in self.when:
            v = _get(e, path)
            if want == "*" and v:
                continue
            if v != want:
                return False
        return True


class AllocationRules:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def allocate(self, e: dict[str, Any], priced: PricedCost) -> list[tuple[dict[str, Any], PricedCost]]:
        """The event as owned (one entry), or its shares (several); costs and quantities sum exactly."""
        for rule in self.rules:
            if not rule.matches(e):
                continue
            if rule.owner:
                owned = dict(e)
                for f, tmpl in rule.owner:
                    v = _render(tmpl, e)
                    if v:
                        owned[f] = v
                owned["attributes"] = {**(e.get("attributes") or {}), "allocation_rule": rule.name}
                return [(owned, priced)]
            return self._split(rule, e, priced)
        return [(e, priced)]

    @staticmethod
    def _split(rule: Rule, e: dict[str, Any], p: PricedCost) -> list[tuple[dict[str, Any], PricedCost]]:
        weights = [w for _, w in rule.split]
        qty = {f: split_nanos(e.get(f, 0) or 0, weights) for f in QUANTITY_FIELDS}
        comps = [split_nanos(c, weights) for c in p.components]
        lists, contracted, charged = (split_nanos(v, weights) for v in (p.list_nanos, p.contracted_nanos, p.charged_nanos))
        out = []
        for i, (team, w) in enumerate(rule.split):
            share = {**e, **{f: qty[f][i] for f in QUANTITY_FIELDS}, "team": team}
            share["attributes"] = {**(e.get("attributes") or {}), "allocation_rule": rule.name,
                                   "allocation_share": f"{w}/{sum(weights)}", "allocation_key": rule.split_key}
            share["gpu_seconds"] = (e.get("gpu_seconds") or 0.0) * w / sum(weights)
            out.append((share, p._replace(components=tuple(c[i] for c in comps), list_nanos=lists[i],
                                          contracted_nanos=contracted[i], charged_nanos=charged[i])))
        return out


def parse_rules(raw: Mapping[str, Any], source: str = "allocation rules") -> AllocationRules:
    """Raises ConfigError naming the rule and field."""
    items = raw.get("rules") if isinstance(raw, Mapping) else None
    if not isinstance(items, list):
        raise ConfigError(f"{source}: expected a top-level `rules:` list")
    rules = []
    for i, r in enumerate(items):
        where = f"{source}: rule #{i + 1} ({r.get('name', '?') if isinstance(r, Mapping) else '?'})"
        if not isinstance(r, Mapping) or not isinstance(r.get("when"), Mapping) or not r["when"]:
            raise ConfigError(f"{where}: needs a non-empty `when:` mapping")
        owner = r.get("owner") or {}
        split = r.get("split") or {}
        if bool(owner) == bool(split):
            raise ConfigError(f"{where}: give exactly one of `owner:` or `split:`")
        bad = [f for f in owner if f not in _OWNER_FIELDS]
        if bad:
            raise ConfigError(f"{where}: owner fields must be among {_OWNER_FIELDS}, got {bad}")
        shares = split.get("shares") if split else {}
        if split and (not isinstance(shares, Mapping) or not shares
                      or any(not isinstance(w, int) or w < 0 for w in shares.values()) or sum(shares.values()) == 0):
            raise ConfigError(f"{where}: split.shares must map teams to non-negative integer weights")
        if split and not split.get("key"):
            raise ConfigError(f"{where}: split.key must state the allocation key (e.g. 'token volume, 2026-10')")
        rules.append(Rule(
            name=str(r.get("name") or f"rule-{i + 1}"),
            when=tuple((str(k), str(v)) for k, v in r["when"].items()),
            owner=tuple((str(k), str(v)) for k, v in owner.items()),
            split=tuple((str(k), int(v)) for k, v in (shares or {}).items()),
            split_key=str(split.get("key", "")) if split else "",
        ))
    return AllocationRules(rules)

