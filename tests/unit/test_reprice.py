"""Reprice: per-event deltas of a past range under a new price book (the correction rows are [analytics]')."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from spendstream.cli import app
from spendstream.money import usd_to_nanos
from spendstream.pricebook import parse_price_book
from spendstream.pricing import PriceBook
from spendstream.reprice import reprice, summarize

DAY = 86_400_000
NOV_1 = 1_793_491_200_000


def book(input_usd: str, version: str) -> PriceBook:
    return PriceBook(parse_price_book({"version": version, "extends": "none",
                                       "models": [{"provider": "a", "model": "m", "rates": {"input": input_usd}}]}))


def events(n: int = 5) -> list[dict]:
    return [{"event_id": f"e{i}", "event_time": NOV_1 + i * DAY, "provider": "a", "model": "m",
             "input_tokens": 1_000_000} for i in range(n)]


def test_delta_is_new_minus_old_charged_per_event_within_the_range():
    old, new = book("3", "v1"), book("2.5", "v2")
    deltas = list(reprice(events(), new, old=old, start_ms=NOV_1 + DAY, end_ms=NOV_1 + 3 * DAY))
    assert [d.event_id for d in deltas] == ["e1", "e2"]  # [start, end)
    assert all(d.delta_nanos == -usd_to_nanos("0.5") for d in deltas)
    assert deltas[0].old_version.startswith("v1@") and deltas[0].new.price_version.startswith("v2@")


def test_summary_totals_equal_the_sum_of_the_deltas_exactly():
    s = summarize(reprice(events(), book("2.5", "v2"), old=book("3", "v1")))
    assert (s.events, s.changed) == (5, 5)
    assert s.delta_nanos == s.new_charged_nanos - s.old_charged_nanos == -usd_to_nanos("2.5")
    assert s.by_model == {("a", "m"): -usd_to_nanos("2.5")}


def test_without_an_old_book_the_booked_figures_are_the_baseline():
    rows = [e | {"list_nanos": 100, "contracted_nanos": 100, "charged_nanos": 100, "price_version": "v0"}
            for e in events(1)]
    (d,) = reprice(rows, book("3", "v1"))
    assert d.delta_nanos == usd_to_nanos("3") - 100 and d.old_version == "v0"


def test_same_book_gives_zero_deltas():
    b = book("3", "v1")
    assert summarize(reprice(events(), b, old=b)).changed == 0


def test_cli_reprice_is_a_dry_run_by_default_and_prints_the_total_delta(tmp_path):
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events(2)))
    for name, rate in (("old.yaml", "3"), ("new.yaml", "2.5")):
        (tmp_path / name).write_text(f"version: {name}\nextends: none\nmodels:\n"
                                     f"  - {{provider: a, model: m, rates: {{input: '{rate}'}}}}\n")
    args = ["--events", str(tmp_path / "events.jsonl"), "--book", str(tmp_path / "new.yaml"),
            "--old-book", str(tmp_path / "old.yaml")]
    missing = CliRunner().invoke(app, ["reprice", *args])  # no range
    assert missing.exit_code != 0
    result = CliRunner().invoke(app, ["reprice", *args, "--from", "2026-11-01", "--to", "2026-12-01"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "delta -1.000000000 USD" in result.output  # 2 events x 1M tokens x (2.5 - 3) USD per 1M
    assert "dry run: nothing written" in result.output
    applied_to_a_file = CliRunner().invoke(app, ["reprice", *args, "--from", "2026-11-01", "--to", "2026-12-01",
                                                 "--apply"])
    assert applied_to_a_file.exit_code != 0


def test_the_old_reprice_spellings_say_where_the_command_moved(tmp_path):
    from spendstream.cli import main  # noqa: F401  (the entry point prints SpendstreamError plainly)

    for old in (["prices", "reprice", "--events", "x"], ["reprice", "apply", "--book", "x"]):
        result = CliRunner().invoke(app, old)
        assert result.exit_code != 0
        assert "moved: use `spendstream reprice" in str(result.exception), old
