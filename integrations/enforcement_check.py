"""Asking the enforcement API before a model call: the `Checker` protocols and their HTTP implementations.

Any object with `check(request: dict) -> dict` (keys `decision`, `reason`, optionally `budget_id`,
`suggested_model`, `retry_after`, `reservation_id`) fits the sync paths; `AsyncChecker` (`async def check`) the
async ones, e.g. the enforcement package's in-process client. `release(reservation_id)` frees a hold whose call
was not made.

`HttpChecker` (httpx.Client) is for sync code only; `AsyncHttpChecker` (one pooled httpx.AsyncClient per event
loop) for async code and the LiteLLM hooks, so a check never blocks an event loop or starts a thread.
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncio
import weakref

import httpx

from integrations.errors import EnforcementUnavailable

__all__ = ["Checker", "AsyncChecker", "HttpChecker", "AsyncHttpChecker", "check_request"]


class Checker(Protocol):
    def check(self, request: dict[str, Any]) -> dict[str, Any]: ...


class AsyncChecker(Protocol):
    async def check(self, request: dict[str, Any]) -> dict[str, Any]: ...


def check_request(tags: dict[str, Any], provider: str, model: str, est_input: int, est_output: int,
                  reserve: bool = False) -> dict[str, Any]:
    """The body of POST /v1/check (`reserve`: hold the estimate until the usage event settles it)."""
    body = {
        "team": tags.get("team"), "use_case": tags.get("use_case"), "cost_center": tags.get("cost_center"),
        "environment": tags.get("environment"), "provider": provider, "model": model,
        "estimated_input_tokens": int(est_input), "estimated_output_tokens": int(est_output),
    }
    if reserve:
        body["reserve"] = True
    return body


def _answer(url: str, resp: httpx.Response) -> dict[str, Any]:
    try:
        resp.raise_for_status()
        body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise EnforcementUnavailable(f"enforcement API at {url}: {exc}") from exc
    if not isinstance(body, dict) or "decision" not in body:
        raise EnforcementUnavailable(f"enforcement API at {url} answered without a decision")
    return body


class HttpChecker:
    """POSTs to `{base_url}/v1/check` with `Authorization: Bearer <key>`.

    Raises EnforcementUnavailable on a transport error, a non-2xx answer or a body without `decision`."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 0.2, client: httpx.Client | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._url = self._base + "/v1/check"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._client = client or httpx.Client(timeout=timeout_s)

    def check(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self._client.post(self._url, json=request, headers=self._headers)
        except httpx.HTTPError as exc:
            raise EnforcementUnavailable(f"enforcement API at {self._url}: {exc}") from exc
        return _answer(self._url, resp)

    def release(self, reservation_id: str) -> bool:
        """Free the hold of a call that was not made. Raises EnforcementUnavailable when the API does not answer."""
        url = f"{self._base}/v1/reservations/{reservation_id}/release"
        try:
            resp = self._client.post(url, headers=self._headers)
            resp.raise_for_status()
            return bool(resp.json().get("released"))
        except (httpx.HTTPError, ValueError) as exc:
            raise EnforcementUnavailable(f"enforcement API at {url}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


class AsyncHttpChecker:
    """`HttpChecker` for async code: `await check(...)`, `await release(...)`. Keeps one pooled
    `httpx.AsyncClient` per running event loop (a client's connections belong to the loop that opened them), so
    LiteLLM's own loops and the caller's loop each reuse their connections. Raises EnforcementUnavailable."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 0.2, max_connections: int = 20) -> None:
        self._base = base_url.rstrip("/")
        self._url = self._base + "/v1/check"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout, self._limits = timeout_s, httpx.Limits(max_connections=max_connections)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = \
            weakref.WeakKeyDictionary()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = self._clients[loop] = httpx.AsyncClient(timeout=self._timeout, limits=self._limits)
        return client

    async def check(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = await self._client().post(self._url, json=request, headers=self._headers)
        except httpx.HTTPError as exc:
            raise EnforcementUnavailable(f"enforcement API at {self._url}: {exc}") from exc
        return _answer(self._url, resp)

    async def release(self, reservation_id: str) -> bool:
        url = f"{self._base}/v1/reservations/{reservation_id}/release"
        try:
            resp = await self._client().post(url, headers=self._headers)
            resp.raise_for_status()
            return bool(resp.json().get("released"))
        except (httpx.HTTPError, ValueError) as exc:
            raise EnforcementUnavailable(f"enforcement API at {url}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the client of the running loop (others close with their loops)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
