"""Asking the enforcement API before a model call: the `Checker` protocol and its HTTP implementation.

Any object with `check(request: dict) -> dict` (keys `decision`, `reason`, optionally `budget_id`,
`suggested_model`, `retry_after`) fits, e.g. the enforcement package's in-process client.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from integrations.errors import EnforcementUnavailable

__all__ = ["Checker", "HttpChecker", "check_request"]


class Checker(Protocol):
    def check(self, request: dict[str, Any]) -> dict[str, Any]: ...


def check_request(tags: dict[str, Any], provider: str, model: str, est_input: int, est_output: int) -> dict[str, Any]:
    """The body of POST /v1/check."""
    return {
        "team": tags.get("team"), "use_case": tags.get("use_case"), "cost_center": tags.get("cost_center"),
        "environment": tags.get("environment"), "provider": provider, "model": model,
        "estimated_input_tokens": int(est_input), "estimated_output_tokens": int(est_output),
    }


class HttpChecker:
    """POSTs to `{base_url}/v1/check` with `Authorization: Bearer <key>`.

    Raises EnforcementUnavailable on a transport error, a non-2xx answer or a body without `decision`."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 0.2, client: httpx.Client | None = None) -> None:
        self._url = base_url.rstrip("/") + "/v1/check"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._client = client or httpx.Client(timeout=timeout_s)

    def check(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self._client.post(self._url, json=request, headers=self._headers)
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise EnforcementUnavailable(f"enforcement API at {self._url}: {exc}") from exc
        if not isinstance(body, dict) or "decision" not in body:
            raise EnforcementUnavailable(f"enforcement API at {self._url} answered without a decision")
        return body

    def close(self) -> None:
        self._client.close()
