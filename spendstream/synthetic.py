"""A realistic synthetic usage stream for the demo, tests and benchmarks. Pure: seeded, time passed in.

Teams own use cases and cost centers; models and quantities follow the use case; a few events miss tags (they
book to `unallocated`), some are GPU jobs, and each event's cost is what the price book says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

__all__ = ["TEAMS", "SyntheticStream", "hot_team_mix"]

# team -> (cost center, [(use case, environment, workload, provider, model, weight)])
TEAMS: dict[str, tuple[str, list[tuple[str, str, str, str, str, int]]]] = {
    "search": ("cc-1001", [
        ("query-rewrite", "production", "inference", "openai", "gpt-4o-mini", 6),
        ("semantic-index", "production", "embedding", "openai", "text-embedding-3-small", 3),
    ]),
    "support": ("cc-2001", [
        ("ticket-triage", "production", "inference", "anthropic", "claude-haiku-3.5", 5),
        ("reply-drafts", "production", "inference", "anthropic", "claude-sonnet-4", 3),
    ]),
    "payments": ("cc-3001", [
        ("fraud-explainer", "production", "inference", "openai", "gpt-4o", 4),
    ]),
    "research": ("cc-9001", [
        ("agent-evals", "research", "evaluation", "anthropic", "claude-sonnet-4", 2),
        ("finetune-runs", "research", "training", "internal-gpu", "h100-pool", 1),
    ]),
    "growth": ("cc-4001", [
        ("email-personalization", "staging", "batch", "google", "gemini-2.0-flash", 3),
    ]),
}


@dataclass
class SyntheticStream:
    seed: int = 7
    untagged_share: float = 0.03

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._n = 0
        self._choices = [
            (team, cc, uc) for team, (cc, ucs) in TEAMS.items() for uc in ucs for _ in range(uc[5])
        ]

    def event(self, now_ms: int) -> dict[str, Any]:
        rng = self._rng
        team, cc, (use_case, env, workload, provider, model, _) = rng.choice(self._choices)
        self._n += 1
        e: dict[str, Any] = {
            "event_id": f"syn-{self.seed}-{self._n}",
            "event_time": now_ms - rng.randrange(0, 2000),
            "source": rng.choice(("sdk", "sdk", "litellm", "gateway")),
            "provider": provider, "model": model,
            "operation": "chat", "request_count": 1,
            "team": team, "cost_center": cc, "use_case": use_case, "environment": env, "workload_type": workload,
            "attributes": {},
        }
        if workload == "training":
            e.update(operation="training", gpu_seconds=float(rng.randrange(10, 120)), accelerator_type="h100",
                     activity_type="training_run", activity_id=f"run-{rng.randrange(1, 40)}")
        elif workload == "embedding":
            e.update(operation="embedding", input_tokens=rng.randrange(200, 8000))
        else:
            e.update(input_tokens=rng.randrange(200, 6000), output_tokens=rng.randrange(50, 1200),
                     cached_input_tokens=rng.choice((0, 0, rng.randrange(0, 4000))))
            if team == "support":
                e.update(activity_type="ticket", activity_id=f"T-{rng.randrange(1000, 1500)}")
        if rng.random() < self.untagged_share:
            e[rng.choice(("team", "use_case", "cost_center"))] = None
        return e

    def events(self, n: int, now_ms: int) -> Iterator[dict[str, Any]]:
        for _ in range(n):
            yield self.event(now_ms)


def hot_team_mix(n: int, seed: int = 1, hot_share: float = 0.60, mid_teams: int = 4, mid_share: float = 0.05,
                 tail_teams: int = 40) -> list[str]:
    """`n` team names for a skewed workload: one team with `hot_share` of the events, a few mid teams with
    `mid_share` each, and a long tail sharing the rest (the hot-partition benchmark and its tests)."""
    names = ["hot-team"] + [f"mid-{i}" for i in range(mid_teams)] + [f"tail-{i}" for i in range(tail_teams)]
    tail_share = (1 - hot_share - mid_teams * mid_share) / tail_teams
    weights = [hot_share] + [mid_share] * mid_teams + [tail_share] * tail_teams
    return random.Random(seed).choices(names, weights, k=n)
