"""Allocation: who owns an event's cost.

Every required tag that is missing books that dimension to `unallocated` — the cost is never dropped — and the
event counts as untagged for tag coverage (% of cost carrying all required tags).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from schemas.models import ENVIRONMENTS, REQUIRED_TAGS, WORKLOAD_TYPES

__all__ = ["UNALLOCATED", "Owner", "owner_of", "scope_values"]

UNALLOCATED = "unallocated"


class Owner(NamedTuple):
    team: str
    cost_center: str
    use_case: str
    environment: str
    workload_type: str
    fully_tagged: bool


def owner_of(event: Mapping[str, Any]) -> Owner:
    """The owner dimensions of an event; a missing or invalid required tag becomes `unallocated`."""
    vals = []
    tagged = True
    for tag in REQUIRED_TAGS:
        v = event.get(tag)
        if tag == "environment" and v not in ENVIRONMENTS:
            v = None
        elif tag == "workload_type" and v not in WORKLOAD_TYPES:
            v = None
        if not v:
            tagged = False
            v = UNALLOCATED
        vals.append(v)
    return Owner(*vals, tagged)


def scope_values(owner: Owner, provider: str, model: str) -> tuple[tuple[str, str], ...]:
    """The (kind, value) budget scopes one event's cost counts toward."""
    return (
        ("org", "all"),
        ("cost_center", owner.cost_center),
        ("team", owner.team),
        ("use_case", owner.use_case),
        ("team_use_case", f"{owner.team}/{owner.use_case}"),
        ("model", f"{provider}/{model}"),
        ("environment", owner.environment),
    )
