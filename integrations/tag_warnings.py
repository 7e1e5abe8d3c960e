"""Warn (once per distinct problem) when a recorded event lacks a required tag: it is still sent, and the worker
books it to `unallocated`."""

from __future__ import annotations

import logging

from integrations.producer_settings import ENVS, WORKLOADS
from schemas.models import tag_problems

__all__ = ["TagWarnings"]

log = logging.getLogger("integrations.publisher")


class TagWarnings:
    def __init__(self, limit: int = 10_000) -> None:
        self._warned: set[tuple] = set()
        self._limit = limit

    def check(self, event: dict) -> bool:
        """True when the event carries every required tag; else warns (first time per team and problem)."""
        if (event.get("team") and event.get("cost_center") and event.get("use_case")
                and event.get("environment") in ENVS and event.get("workload_type") in WORKLOADS):
            return True
        problems = tag_problems(event)
        key = (event.get("team"), problems)
        if key not in self._warned and len(self._warned) < self._limit:
            self._warned.add(key)
            log.warning("spendstream: event will be booked to 'unallocated' (%s); team=%r model=%r",
                        ", ".join(problems), event.get("team"), event.get("model"))
        return False
