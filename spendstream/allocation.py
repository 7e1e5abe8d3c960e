"""Allocation: who owns an event's cost.

Every required tag that is missing books that dimension to `unallocated` — the cost is never dropped — and the
event counts as untagged for tag coverage (% of cost carrying all required tags).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, NamedTuple

from schemas.models import ENVIRONMENTS, WORKLOAD_TYPES

__all__ = ["UNALLOCATED", "Owner", "owner_of", "owner_for_tags"]

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
    g = event.get
    return owner_for_tags(g("team"), g("cost_center"), g("use_case"), g("environment"), g("workload_type"))


@lru_cache(maxsize=65536)
def owner_for_tags(team, cost_center, use_case, environment, workload_type) -> Owner:
    """`owner_of` from the five tag values (the worker's one-pass loop has them as locals). Cached: a stream has
    few distinct tag combinations, and this runs once per event."""
    if environment not in ENVIRONMENTS:
        environment = None
    if workload_type not in WORKLOAD_TYPES:
        workload_type = None
    vals = (team, cost_center, use_case, environment, workload_type)
    return Owner(*(v or UNALLOCATED for v in vals), all(vals))
