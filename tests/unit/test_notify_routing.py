"""One routing for budget alerts and scheduled report summaries: a team's own Slack / email replace the org
default for that team; every other team gets the org default."""

from __future__ import annotations

from sinks.notifiers import EmailNotifier, SlackNotifier
from spendstream.settings import AlertSettings
from stream_app.notify_agent import routing_from


def test_team_routes_replace_the_org_default_for_that_team_only():
    r = routing_from(AlertSettings(
        slack_webhook_url="https://hooks.example/org", email_to="finops@example.com", smtp_host="127.0.0.1",
        team_slack_webhook_urls={"payments": "https://hooks.example/pay"},
        team_emails={"payments": "pay-lead@example.com, pay-oncall@example.com"}))
    pay = r.for_team("payments")
    assert [type(n) for n in pay] == [SlackNotifier, EmailNotifier]
    assert pay[0].url == "https://hooks.example/pay" and pay[1].to == ("pay-lead@example.com", "pay-oncall@example.com")
    org = r.for_team("search")
    assert [(type(n), getattr(n, "url", None) or n.to) for n in org] == [
        (SlackNotifier, "https://hooks.example/org"), (EmailNotifier, ("finops@example.com",))]
    assert r.for_team(None) == org


def test_email_needs_an_smtp_host():
    assert routing_from(AlertSettings(email_to="finops@example.com")).for_team("x") == []
