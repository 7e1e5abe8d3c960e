"""Price book files: parsing, clear errors, the shipped catalog and example, and `spendstream prices show`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendstream.cli import app
from spendstream.cli.files import load_price_book, read_events_jsonl
from spendstream.errors import ConfigError
from spendstream.money import usd_to_nanos
from spendstream.pricebook import parse_price_book
from spendstream.pricing import default_price_book

EXAMPLE = Path(__file__).resolve().parents[2] / "spendstream" / "data" / "pricebook.example.yaml"
NOV_20_2026 = 1_795_132_800_000


def write(tmp_path: Path, text: str, name: str = "book.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bad_rate_names_file_line_and_field(tmp_path):
    path = write(tmp_path, "version: v1\nmodels:\n  - provider: openai\n    model: gpt-4o\n    rates: {input: abc}\n")
    with pytest.raises(ConfigError, match=r"book\.yaml:5: models\[0\]\.rates\.input: not an amount of USD"):
        load_price_book(path)


def test_unknown_field_is_refused_with_the_allowed_ones(tmp_path):
    path = write(tmp_path, "version: v1\nmarkup:\n  prod: '15'\n")
    with pytest.raises(ConfigError, match=r"book\.yaml:3: markup: unknown field\(s\) \['prod'\]"):
        load_price_book(path)


def test_missing_version_is_refused():
    with pytest.raises(ConfigError, match=r"price book\.version: required"):
        parse_price_book({"models": []}, "x.yaml")


def test_discount_needs_exactly_one_of_percent_or_override():
    with pytest.raises(ConfigError, match=r"discounts\[0\]: give exactly one"):
        parse_price_book({"version": "v", "discounts": [{"provider": "a", "percent": "5", "override": {}}]})


def test_gb_unit_must_be_decimal_or_binary():
    with pytest.raises(ConfigError, match=r"gb: expected one of \['binary', 'decimal'\]"):
        parse_price_book({"version": "v", "gb": "metric"})


def test_unquoted_yaml_numbers_are_read_exactly_not_as_floats(tmp_path):
    path = write(tmp_path, "version: v1\nextends: none\nmodels:\n"
                           "  - {provider: a, model: m, rates: {input: 0.1}}\n")
    cost = load_price_book(path).price({"event_time": 0, "provider": "a", "model": "m", "input_tokens": 10**7})
    assert cost.charged_nanos == usd_to_nanos("1")


def test_toml_price_book_loads(tmp_path):
    path = write(tmp_path, 'version = "t1"\nextends = "none"\n[[models]]\nprovider = "a"\nmodel = "m"\n'
                           '[models.rates]\ninput = 2.5\n', "book.toml")
    cost = load_price_book(path).price({"event_time": 0, "provider": "a", "model": "m", "input_tokens": 10**6})
    assert cost.charged_nanos == usd_to_nanos("2.5")


def test_example_book_local_entry_overrides_catalog_and_marks_up_production():
    book = load_price_book(EXAMPLE)
    e = {"event_time": NOV_20_2026, "provider": "anthropic", "model": "claude-sonnet-4", "input_tokens": 10**6,
         "environment": "production"}
    cost = book.price(e)
    assert cost.rule.startswith("local:anthropic/claude-sonnet-4@2026-01-01")
    assert cost.list_nanos == usd_to_nanos("3")
    assert cost.contracted_nanos == usd_to_nanos("2.70")  # negotiated override
    assert cost.charged_nanos == usd_to_nanos("3.105")  # +15 % production markup
    assert "+genai-prices-" in cost.price_version


def test_catalog_covers_dozens_of_providers_with_dated_prices():
    book = default_price_book()
    assert len(book.catalog.providers()) >= 40
    old = book.explain("anthropic", "claude-3-5-sonnet-latest", date(2024, 7, 1))
    assert old["source"].startswith("catalog:genai-prices") and not old["unpriced"]


def test_provider_alias_maps_bedrock_to_the_aws_catalog():
    assert default_price_book().explain("aws-bedrock", "amazon.nova-pro-v1:0", date(2026, 1, 1))["provider"] == "aws"


def test_prices_show_explains_rule_source_and_effective_date():
    result = CliRunner().invoke(app, ["prices", "show", "--model", "claude-sonnet-4", "--at", "2026-11-20",
                                      "--env", "production", "--book", str(EXAMPLE)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "local:anthropic/claude-sonnet-4@2026-01-01" in result.output
    assert "pricebook.example.yaml#models[0]" in result.output
    assert "effective since: 2026-01-01" in result.output
    assert "$3 / 1M tokens" in result.output and "$3.105 / 1M tokens" in result.output


def test_events_jsonl_refuses_fractional_token_counts(tmp_path):
    path = write(tmp_path, '{"event_time": 0, "input_tokens": 1.5}\n', "events.jsonl")
    with pytest.raises(ConfigError, match=r"events\.jsonl:1: input_tokens: expected a whole number"):
        list(read_events_jsonl(path))
