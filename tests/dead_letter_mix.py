"""A stream for two teams whose every dead letter and unpriced event is known by construction (no product code
decides what is bad): valid events of `alpha` and `beta`, unknown-model events of alpha, events failing validation
(alone, inside a batch message among good ones, two in one batch message), bytes that do not decode and an invalid
event that names no team. All on one Kafka key, so one partition reads them in publish order: the `tail` (every
message after the last bookable one) is what a worker restarted from offset 0 decodes again."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas.codec import UsageCodec

__all__ = ["Mix", "two_team_mix", "UNKNOWN_MODEL", "KEY"]

UNKNOWN_MODEL = "mystery-llm-9"  # in no price book: priced by the fallback rule, flagged unpriced
KEY = b"dq"
HOUR_MS = 3_600_000


@dataclass
class Mix:
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead: Counter = field(default_factory=Counter)       # (team or '', reason) -> dead letters
    booked: Counter = field(default_factory=Counter)     # team -> events booked (unpriced ones included)
    unpriced: Counter = field(default_factory=Counter)   # (team, provider, model) -> unpriced events
    events: int = 0                                      # every event the worker sees (one per undecodable message)
    tail_dead: int = 0                                   # dead letters after the last bookable message

    def dead_of(self, team: str) -> dict[str, int]:
        return {reason: n for (t, reason), n in self.dead.items() if t == team}


def two_team_mix(now_ms: int) -> Mix:
    codec = UsageCodec()
    mix = Mix()
    n = 0

    def ev(team: str | None, **over) -> dict:
        nonlocal n
        n += 1
        return {"event_id": f"dq-{team or 'none'}-{n}", "event_time": now_ms - 60_000, "source": "sdk",
                "provider": "openai", "model": "gpt-4o", "operation": "chat", "input_tokens": 1000,
                "output_tokens": 100, "request_count": 1, "team": team, "cost_center": f"cc-{team}",
                "use_case": "chat", "environment": "production", "workload_type": "inference", "attributes": {}} | over

    def good(e: dict) -> dict:
        mix.booked[e["team"]] += 1
        if e["model"] == UNKNOWN_MODEL:
            mix.unpriced[(e["team"], e["provider"], e["model"])] += 1
        return e

    def bad(e: dict, reason: str, tail: bool) -> dict:
        mix.dead[(e["team"] or "", reason)] += 1
        mix.tail_dead += tail
        return e

    def single(e: dict) -> None:
        mix.messages.append((KEY, codec.encode(e)))
        mix.events += 1

    def batch(events: list[dict]) -> None:
        mix.messages.append((KEY, codec.encode_batch(events)))
        mix.events += len(events)

    for team in ("alpha", "beta"):
        for _ in range(10):
            single(good(ev(team)))
    for _ in range(2):
        single(good(ev("alpha", model=UNKNOWN_MODEL)))
    single(bad(ev("alpha", input_tokens=-1), "negative_quantity", False))
    batch([good(ev("alpha")), good(ev("beta")), bad(ev("alpha", output_tokens=-5), "negative_quantity", False),
           good(ev("beta"))])
    # the tail: nothing bookable after this point
    single(bad(ev("alpha", model=""), "missing_model", True))
    single(bad(ev("alpha", event_time=now_ms + 3 * HOUR_MS), "future_event_time", True))
    single(bad(ev("alpha", reasoning_tokens=-1), "negative_quantity", True))
    single(bad(ev("beta", input_tokens=10**12), "absurd_quantity", True))
    batch([bad(ev("alpha", input_tokens=-2), "negative_quantity", True),
           bad(ev("alpha", request_count=10**15), "absurd_quantity", True)])
    single(bad(ev(None, input_tokens=-3), "negative_quantity", True))  # decodes, but names no team
    mix.messages.append((KEY, b"\x07" + codec.encode(ev("alpha"))[1:]))  # does not decode: no team is known
    mix.events += 1
    mix.dead[("", "bad_magic")] += 1
    mix.tail_dead += 1
    return mix
