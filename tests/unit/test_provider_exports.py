"""Provider export parsers (pure): exact amounts (no float on the way), cents in Anthropic's report, the FOCUS
provider / AI-service filter, content detection, and the errors that name what is wrong."""

from __future__ import annotations

import json

import pytest

from spendstream.errors import ConfigError
from spendstream.provider_exports import (detect_kind, parse_anthropic_cost_report, parse_focus, parse_openai_costs,
                                          provider_names)


def _openai(value, currency="usd", project="proj_a"):
    return json.dumps({"object": "page", "has_more": False, "next_page": None, "data": [
        {"object": "bucket", "start_time": 1793491200, "end_time": 1793577600, "results": [
            {"object": "organization.costs.result", "amount": {"value": value, "currency": currency},
             "line_item": "gpt-4o, input", "project_id": project}]}]})


def test_openai_values_are_read_as_exact_decimals_then_rounded_half_even_to_the_nano():
    # 0.1 + 0.2 style: a float would drift; 0.0000000025 is 2.5 nano -> 2 (half-even), 0.0000000035 -> 4
    assert [ln.amount for ln in parse_openai_costs(_openai("__V__").replace('"__V__"', "0.30000000000000004"))] == [300_000_000]
    assert parse_openai_costs(_openai(1).replace(": 1,", ": 0.0000000025,"))[0].amount == 2
    assert parse_openai_costs(_openai(1).replace(": 1,", ": 0.0000000035,"))[0].amount == 4
    ln = parse_openai_costs(_openai(1.5, project=None))[0]
    assert (ln.month, ln.day, ln.key, ln.detail) == ("2026-11", "2026-11-01", "(no project)", "gpt-4o, input")
    with pytest.raises(ConfigError, match="currency 'eur' needs FX rates"):
        parse_openai_costs(_openai(1, currency="eur"))


def test_anthropic_amounts_are_cents_as_decimal_strings():
    doc = {"data": [{"starting_at": "2026-11-30T00:00:00Z", "ending_at": "2026-12-01T00:00:00Z", "results": [
        {"currency": "USD", "amount": "123.45", "model": "claude-sonnet-4-20250514", "cost_type": "tokens"},
        {"currency": "USD", "amount": "7", "model": None, "cost_type": "web_search"}]}],
        "has_more": False, "next_page": None}
    lines = parse_anthropic_cost_report(json.dumps(doc))
    assert [(ln.month, ln.key, ln.amount) for ln in lines] == [
        ("2026-11", "claude-sonnet-4-20250514", 1_234_500_000), ("2026-11", "(web_search)", 70_000_000)]
    with pytest.raises(ConfigError, match="not a decimal"):
        parse_anthropic_cost_report(json.dumps(doc).replace('"123.45"', '"12x"'))


def test_focus_rows_of_other_providers_and_non_ai_services_are_left_out():
    head = "BilledCost,BillingCurrency,ChargePeriodStart,ProviderName,PublisherName,ServiceCategory,ServiceName,InvoiceId\n"
    text = head + ("1.5,USD,2026-11-02T00:00:00Z,AWS,Anthropic,AI and Machine Learning,Amazon Bedrock,I-1\n"
                   "9,USD,2026-11-02T00:00:00Z,AWS,AWS,Compute,Amazon EC2,I-1\n"
                   "4,USD,2026-11-02T00:00:00Z,Microsoft,Microsoft,AI and Machine Learning,Azure OpenAI,I-2\n")
    lines = parse_focus(text, provider_names("aws-bedrock", {"aws-bedrock": "aws"}, "Amazon Web Services"))
    assert [(ln.key, ln.amount, ln.invoice_id) for ln in lines] == [("Amazon Bedrock", 1_500_000_000, "I-1")]
    with pytest.raises(ConfigError, match="not a FOCUS file"):
        parse_focus("date,model,cost_usd\n", {"aws"})


def test_the_kind_of_an_export_is_told_from_its_content():
    assert detect_kind("x", _openai(1)) == "openai-costs"
    assert detect_kind("x", '{"data": [{"starting_at": "2026-11-01T00:00:00Z"}]}') == "anthropic-cost-report"
    assert detect_kind("x", "BilledCost,ChargePeriodStart,ServiceName\n") == "focus"
    assert detect_kind("x", "date,model,cost_usd\n") == "invoice-csv"


def test_an_export_billed_in_euros_is_converted_at_the_rate_of_its_day():
    from spendstream.fx import parse_fx_csv

    fx = parse_fx_csv("date,currency,per_usd\n2026-11-01,EUR,0.8\n2026-11-02,EUR,0.9\n")
    head = "BilledCost,BillingCurrency,ChargePeriodStart,ProviderName,ServiceCategory,ServiceName\n"
    text = head + ("8,EUR,2026-11-01T00:00:00Z,AWS,AI and Machine Learning,Amazon Bedrock\n"
                   "1,EUR,2026-11-02T00:00:00Z,AWS,AI and Machine Learning,Amazon Bedrock\n")
    lines = parse_focus(text, {"aws"}, fx=fx)
    # 8 EUR / 0.8 = 10 USD; 1 EUR / 0.9 = 1.111111111(1) USD -> half-even to the nano
    assert [ln.amount for ln in lines] == [10_000_000_000, 1_111_111_111]
