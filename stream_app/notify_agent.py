"""The notifier agent: a Faust agent on spend.alerts.v1 that delivers each alert to on-call.

It runs beside the hot path in the worker process, in its own consumer group, so a slow or failing Slack /
PagerDuty / webhook endpoint retries with backoff here and never stalls the stream.
"""

from __future__ import annotations

import logging

import faust
import httpx

from sinks.notifiers import Notifier, Routing, deliver_all
from spendstream.scopes import scope_team, split_scope
from spendstream.settings import AlertSettings

__all__ = ["notifiers_from", "routing_from", "add_notify_agent"]

log = logging.getLogger(__name__)


def notifiers_from(a: AlertSettings) -> list[Notifier]:
    from sinks.notifiers import PagerDutyNotifier, SlackNotifier, WebhookNotifier

    out: list[Notifier] = []
    if a.slack_webhook_url:
        out.append(SlackNotifier(a.slack_webhook_url.get_secret_value()))
    if a.pagerduty_routing_key:
        out.append(PagerDutyNotifier(a.pagerduty_routing_key.get_secret_value(), a.pagerduty_url))
    if a.webhook_url:
        secret = a.webhook_secret.get_secret_value().encode() if a.webhook_secret else b""
        out.append(WebhookNotifier(a.webhook_url, secret))
    return out


def routing_from(a: AlertSettings) -> Routing:
    """Org-wide notifiers plus each team's own Slack webhook / email addresses (they replace the org default
    for that team). One routing for budget alerts and scheduled report summaries."""
    from sinks.notifiers import EmailNotifier, SlackNotifier

    def email(addresses: str) -> list[Notifier]:
        to = tuple(x.strip() for x in addresses.split(",") if x.strip())
        if not (a.smtp_host and to):
            return []
        return [EmailNotifier(a.smtp_host, a.smtp_port, a.smtp_sender, to, a.smtp_username,
                              a.smtp_password.get_secret_value() if a.smtp_password else None, a.smtp_starttls)]

    default = notifiers_from(a) + email(a.email_to or "")
    teams: dict[str, list[Notifier]] = {}
    for team, url in a.team_slack_webhook_urls.items():
        teams.setdefault(team, []).append(SlackNotifier(url.get_secret_value()))
    for team, addresses in a.team_emails.items():
        teams.setdefault(team, []).extend(email(addresses))
    return Routing(default, teams)


def add_notify_agent(app: faust.App, topic_name: str, notifiers: list[Notifier] | Routing,
                     delivered: list | None = None):
    """Register the agent; an alert goes to its team's notifiers (a Routing) or to every notifier (a list).
    `delivered` (optional) collects (alert, results) for metrics and tests."""
    routing = notifiers if isinstance(notifiers, Routing) else Routing(list(notifiers), {})
    topic = app.topic(topic_name, value_serializer="json", key_serializer="raw")

    @app.agent(topic, name="notify")
    async def notify(alerts):
        async with httpx.AsyncClient(timeout=5.0) as client:
            async for alert in alerts:
                targets = routing.for_team(scope_team(*split_scope(alert.get("scope") or "org:all")))
                if not targets:
                    continue
                results = await deliver_all(client, targets, alert)
                if delivered is not None:
                    delivered.append((alert, results))

    return notify
