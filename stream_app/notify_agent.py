"""The notifier agent: a Faust agent on spend.alerts.v1 that delivers each alert to on-call.

It runs beside the hot path in the worker process, in its own consumer group, so a slow or failing Slack /
PagerDuty / webhook endpoint retries with backoff here and never stalls the stream.
"""

from __future__ import annotations

import logging

import faust
import httpx

from sinks.notifiers import Notifier, deliver_all
from spendstream.settings import AlertSettings

__all__ = ["notifiers_from", "add_notify_agent"]

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


def add_notify_agent(app: faust.App, topic_name: str, notifiers: list[Notifier], delivered: list | None = None):
    """Register the agent. `delivered` (optional) collects (alert, results) for metrics and tests."""
    topic = app.topic(topic_name, value_serializer="json", key_serializer="raw")

    @app.agent(topic, name="notify")
    async def notify(alerts):
        async with httpx.AsyncClient(timeout=5.0) as client:
            async for alert in alerts:
                if not notifiers:
                    continue
                results = await deliver_all(client, notifiers, alert)
                if delivered is not None:
                    delivered.append((alert, results))

    return notify
