"""The test oracle (tests/oracle.py, Decimal from a literal rate table) and the product's price book agree, to the
nano-USD per component, on a spread of events. The one place both are imported: if they ever disagree, either the
catalog / built-in book changed (update the oracle's literals on purpose) or the pricer is wrong."""

from __future__ import annotations

import random
import time

import pytest

from spendstream.pricing import COMPONENTS, default_price_book
from spendstream.synthetic import SyntheticStream
from tests.oracle import RATES, oracle_components, oracle_nanos

NOW = 1_764_633_600_000  # 2025-12-02T00:00Z: a fixed day, so catalog dates cannot move the figures


def _spread() -> list[dict]:
    rng = random.Random(2024)
    out = list(SyntheticStream(seed=3).events(2_000, NOW))
    for n in range(600):
        provider, model = rng.choice(sorted(RATES))
        e = {"event_id": f"o-{n}", "event_time": NOW, "provider": provider, "model": model, "request_count": 1,
             "environment": rng.choice(["production", "research", "staging", None])}
        for f in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens"):
            e[f] = rng.choice([0, 1, 3, 7, 333, rng.randrange(0, 120_000)])
        if rng.random() < 0.3:
            e["service_tier"] = rng.choice(["batch", "flex", "standard"])
        if rng.random() < 0.2:
            e["egress_bytes"] = rng.randrange(0, 5 * 10**12)
        out.append(e)
    for n in range(200):  # pure GPU jobs, fractional seconds (half-even on the double), every accelerator
        out.append({"event_id": f"g-{n}", "event_time": NOW, "provider": "internal-gpu", "model": "h100-pool",
                    "gpu_seconds": rng.choice([0.0000005, 0.0000015, 1e-7, 12.5, rng.uniform(0, 10_000)]),
                    "accelerator_type": rng.choice(["h100", "a100", "l4", "unknown-x"])})
    for n in range(100):  # unknown models (no catalog pattern catches these names): the fallback rule
        out.append({"event_id": f"u-{n}", "event_time": NOW, "provider": "nobody", "model": f"zz-unknown-{n}",
                    "input_tokens": rng.randrange(0, 10**6), "output_tokens": rng.randrange(0, 10**6),
                    "cached_input_tokens": rng.randrange(0, 1000), "reasoning_tokens": rng.randrange(0, 1000),
                    "gpu_seconds": rng.choice([0.0, 3.25]), "accelerator_type": "h100", "_fallback": True})
    out.append({"event_id": "egress", "event_time": NOW, "provider": "aws", "model": "s3-transfer",
                "egress_bytes": 1_200_000_000_000})
    return out


def test_oracle_and_price_book_agree_per_component_on_a_spread_of_events():
    book = default_price_book()
    events = _spread()
    for e, p in zip(events, book.price_batch(events)):
        fallback = e.get("_fallback", False)
        expected = oracle_components(e, fallback)
        assert dict(zip(COMPONENTS, p.components)) == expected, e
        assert p.charged_nanos == oracle_nanos(e, fallback) == sum(expected.values()), e
        assert p.unpriced or not fallback, e  # the fallback rule always flags the event unpriced


def test_oracle_worked_examples():
    # $2.5 / 1M input, $10 / 1M output: 1234 in + 321 out = 3,085,000 + 3,210,000 nano-USD
    assert oracle_nanos({"provider": "openai", "model": "gpt-4o", "input_tokens": 1234, "output_tokens": 321}) == 6_295_000
    # 1 us of an H100 at $24/h is 6.67 nano-USD -> 7; 1 byte of egress at $0.08/GB is 0.08 -> 0; 7 bytes 0.56 -> 1
    assert oracle_components({"gpu_seconds": 0.000001, "accelerator_type": "h100"})["gpu"] == 7
    assert oracle_nanos({"egress_bytes": 1}) == 0 and oracle_nanos({"egress_bytes": 7}) == 1
    # 1 h of H100 = $24
    assert oracle_nanos({"gpu_seconds": 3600.0, "accelerator_type": "h100"}) == 24 * 10**9
    # 1.2 TB egress at $0.08 / GB (decimal GB) = $96
    assert oracle_nanos({"egress_bytes": 1_200_000_000_000}) == 96 * 10**9
    with pytest.raises(KeyError):
        oracle_nanos({"provider": "openai", "model": "not-a-model", "input_tokens": 1})
