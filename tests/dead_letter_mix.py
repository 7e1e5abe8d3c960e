"""A stream for two teams whose every dead letter and unpriced event is known by construction (no product code
decides what is bad): valid events of `alpha` and `beta`, unknown-model events of alpha, events failing validation
(alone, inside a batch message among good ones, two in one batch message), bytes that do not decode and an invalid
event that names no team. All on one Kafka key, so one partition reads them in publish order: the `tail` (every
message after the last bookable one) is what a worker restarted from offset 0 decodes again."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas.codec import UsageCodec

__all__ = ["Message", "Mix", "two_team_mix", "UNKNOWN_MODEL", "KEY"]

UNKNOWN_MODEL = "mystery-llm-9"  # in no price book: priced by the fallback rule, flagged unpriced
KEY = b"dq"
HOUR_MS = 3_600_000


@dataclass
class Message:
    value: bytes
    events: int                                          # events the worker sees in it (1 when it does not decode)
    dead: list[tuple[str, str]]                          # (team or '', reason) of each of its bad events
    bookable: bool                                       # carries at least one valid event


@dataclass
class Mix:
    parts: list[Message] = field(default_factory=list)
    booked: Counter = field(default_factory=Counter)     # team -> events booked (unpriced ones included)
    unpriced: Counter = field(default_factory=Counter)   # (team, provider, model) -> unpriced events

    @property
    def messages(self) -> list[tuple[bytes, bytes]]:
        return [(KEY, m.value) for m in self.parts]

    @property
    def events(self) -> int:
        return sum(m.events for m in self.parts)

    @property
    def dead(self) -> Counter:
        """(team or '', reason) -> dead letters."""
        return Counter(d for m in self.parts for d in m.dead)

    @property
    def tail(self) -> list[Message]:
        """The messages after the last bookable one."""
        last = max(i for i, m in enumerate(self.parts) if m.bookable)
        return self.parts[last + 1:]

    def with_reason(self, reason: str) -> list[Message]:
        """The messages a `dlq replay --reason` sends again: one per letter of that reason."""
        return [m for m in self.parts for d in m.dead if d[1] == reason]

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
        e["_reason"] = None
        return e

    def bad(e: dict, reason: str) -> dict:
        e["_reason"] = reason
        return e

    def batch(events: list[dict], encode=None) -> None:
        reasons = [e.pop("_reason") for e in events]
        mix.parts.append(Message((encode or codec.encode_batch)(events), len(events),
                                 [(e["team"] or "", r) for e, r in zip(events, reasons) if r],
                                 any(r is None for r in reasons)))

    def single(e: dict) -> None:
        batch([e], lambda es: codec.encode(es[0]))

    for team in ("alpha", "beta"):
        for _ in range(10):
            single(good(ev(team)))
    for _ in range(2):
        single(good(ev("alpha", model=UNKNOWN_MODEL)))
    single(bad(ev("alpha", input_tokens=-1), "negative_quantity"))
    batch([good(ev("alpha")), good(ev("beta")), bad(ev("alpha", output_tokens=-5), "negative_quantity"),
           good(ev("beta"))])
    # the tail: nothing bookable after this point
    single(bad(ev("alpha", model=""), "missing_model"))
    single(bad(ev("alpha", event_time=now_ms + 3 * HOUR_MS), "future_event_time"))
    single(bad(ev("alpha", reasoning_tokens=-1), "negative_quantity"))
    single(bad(ev("beta", input_tokens=10**12), "absurd_quantity"))
    batch([bad(ev("alpha", input_tokens=-2), "negative_quantity"),
           bad(ev("alpha", request_count=10**15), "absurd_quantity")])
    single(bad(ev(None, input_tokens=-3), "negative_quantity"))  # decodes, but names no team
    # does not decode: no team is known
    mix.parts.append(Message(b"\x07" + codec.encode(ev("alpha"))[1:], 1, [("", "bad_magic")], False))
    return mix
