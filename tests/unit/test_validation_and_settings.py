import pytest

from spendstream.errors import ConfigError
from spendstream.settings import load_settings
from spendstream.validation import Limits, invalid_reason

NOW = 1_764_000_000_000
OK = {"event_id": "e1", "event_time": NOW, "provider": "openai", "model": "gpt-4o", "input_tokens": 10}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"event_id": ""}, "missing_event_id"),
        ({"input_tokens": -1}, "negative_quantity"),
        ({"gpu_seconds": -2.0}, "negative_quantity"),
        ({"output_tokens": 10**12}, "absurd_quantity"),
        ({"event_time": NOW + 2 * 3_600_000}, "future_event_time"),
        ({"event_time": NOW - 90 * 86_400_000}, "expired_event_time"),
        ({"model": ""}, "missing_model"),
    ],
)
def test_unbookable_events_get_a_stable_reason(change, reason):
    assert invalid_reason({**OK, **change}, NOW, Limits())[0] == reason


def test_missing_tags_are_not_a_reason_to_reject():
    assert invalid_reason({**OK, "team": None}, NOW, Limits()) is None


def test_invalid_settings_fail_at_start_up_naming_the_variable(monkeypatch):
    monkeypatch.setenv("SPENDSTREAM_KAFKA__PARTITIONS", "zero")
    with pytest.raises(ConfigError, match="SPENDSTREAM_KAFKA__PARTITIONS"):
        load_settings()


def test_settings_are_frozen():
    s = load_settings()
    with pytest.raises(Exception):
        s.redis.url = "redis://elsewhere"  # type: ignore[misc]
