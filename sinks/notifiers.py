"""On-call notifiers: Slack incoming webhook, PagerDuty Events API v2, generic webhook signed with HMAC-SHA256,
and email over SMTP (scheduled report summaries; stdlib smtplib in a worker thread).

Each delivery retries with exponential backoff on network errors, 429 and 5xx; other 4xx answers are final
(a bad URL or key will not heal by retrying). Failures are logged and counted, never raised into the stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

import httpx

from spendstream.ports import Notifier

__all__ = ["Notifier", "SlackNotifier", "PagerDutyNotifier", "WebhookNotifier", "EmailNotifier", "Routing",
           "deliver_all", "sign"]
_REPORTS = ("weekly", "monthly")  # scheduled report summaries, not alerts

log = logging.getLogger(__name__)


@dataclass
class SlackNotifier:
    url: str
    name: str = "slack"

    def request(self, alert: dict):
        if alert["kind"] in _REPORTS:
            text = f":bar_chart: {alert['message']}"
        elif alert["kind"] == "resolve":
            text = f":white_check_mark: {alert['message']}"
        else:
            icon = ":rotating_light:" if alert["kind"] in ("threshold", "spike") and alert.get("threshold", 0) >= 100 else ":warning:"
            text = f"{icon} *{alert['kind']}* {alert['message']}"
        return self.url, json.dumps({"text": text}).encode(), {"content-type": "application/json"}


@dataclass
class PagerDutyNotifier:
    routing_key: str
    url: str = "https://events.pagerduty.com/v2/enqueue"
    name: str = "pagerduty"

    def request(self, alert: dict):
        dedup = f"spendstream:{alert['budget_id']}:{alert['window']}"
        if alert["kind"] == "resolve":
            body = {"routing_key": self.routing_key, "event_action": "resolve", "dedup_key": dedup}
        else:
            severity = "critical" if alert["kind"] == "threshold" and alert["threshold"] >= 100 else "warning"
            body = {
                "routing_key": self.routing_key, "event_action": "trigger", "dedup_key": dedup,
                "payload": {"summary": alert["message"][:1024], "source": "spendstream", "severity": severity,
                            "component": alert["scope"], "group": alert["budget_id"], "class": alert["kind"],
                            "custom_details": alert},
            }
        return self.url, json.dumps(body).encode(), {"content-type": "application/json"}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`, hex — receivers recompute it and reject stale timestamps."""
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass
class WebhookNotifier:
    url: str
    secret: bytes
    name: str = "webhook"

    def request(self, alert: dict):
        body = json.dumps(alert, sort_keys=True).encode()
        ts = str(int(time.time()))
        return self.url, body, {
            "content-type": "application/json", "x-spendstream-timestamp": ts,
            "x-spendstream-signature": "sha256=" + sign(self.secret, ts, body),
        }


@dataclass
class EmailNotifier:
    """Plain-text email through an SMTP server (STARTTLS / login when configured)."""

    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    name: str = "email"

    def request(self, alert: dict):
        return None  # not HTTP: delivered by `send`

    def send(self, alert: dict) -> None:
        import smtplib
        from email.message import EmailMessage

        msg = EmailMessage()
        what = f"{alert['kind']} report {alert.get('period', '')}" if alert["kind"] in _REPORTS else alert["kind"]
        msg["Subject"] = f"[spendstream] {what}: {alert.get('team', alert.get('scope', ''))}"
        msg["From"], msg["To"] = self.sender, ", ".join(self.to)
        msg.set_content(alert["message"])
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)


@dataclass
class Routing:
    """Which notifiers a team's messages go to: its own when configured, the org default otherwise."""

    default: list
    teams: dict[str, list]

    def for_team(self, team: str | None) -> list:
        return self.teams.get(team or "", self.default)


async def _deliver(client: httpx.AsyncClient, n: Notifier, alert: dict, attempts: int, base_delay: float) -> bool:
    if isinstance(n, EmailNotifier):
        return await _deliver_email(n, alert, attempts, base_delay)
    req = n.request(alert)
    if req is None:
        return True
    url, body, headers = req
    for attempt in range(attempts):
        try:
            r = await client.post(url, content=body, headers=headers)
            if r.status_code < 300:
                return True
            if r.status_code != 429 and r.status_code < 500:
                log.error("%s refused alert %s: HTTP %d %s", n.name, alert["budget_id"], r.status_code, r.text[:200])
                return False
        except httpx.HTTPError as exc:
            log.warning("%s delivery failed (%s), attempt %d/%d", n.name, exc, attempt + 1, attempts)
        await asyncio.sleep(base_delay * 2 ** attempt)
    log.error("%s gave up on alert %s after %d attempts", n.name, alert["budget_id"], attempts)
    return False


async def _deliver_email(n: EmailNotifier, alert: dict, attempts: int, base_delay: float) -> bool:
    import smtplib

    for attempt in range(attempts):
        try:
            await asyncio.to_thread(n.send, alert)
            return True
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("%s delivery failed (%s), attempt %d/%d", n.name, exc, attempt + 1, attempts)
        await asyncio.sleep(base_delay * 2 ** attempt)
    log.error("%s gave up on %s after %d attempts", n.name, alert["budget_id"], attempts)
    return False


async def deliver_all(client: httpx.AsyncClient, notifiers: list[Notifier], alert: dict,
                      attempts: int = 5, base_delay: float = 0.5) -> dict[str, bool]:
    """Send one alert through every notifier concurrently; returns notifier name -> delivered."""
    results = await asyncio.gather(*(_deliver(client, n, alert, attempts, base_delay) for n in notifiers))
    return {n.name: ok for n, ok in zip(notifiers, results)}
