"""The lean path of `POST /v1/check`: an ASGI layer in front of the FastAPI app that answers the happy path itself —
read the body, authenticate, validate, `Checker.check`, record, answer — without FastAPI's dependency solving,
request validation machinery, response building and the middlewares between (measured: about half the API's CPU
per check went there; at 1,000 req/s that CPU is the queueing that makes the tail).

Everything off the happy path is the FastAPI app's, which stays the one home of the HTTP error mapping and the
OpenAPI schema (the /v1/check route stays declared there): a request that is not a POST with a Content-Length
within the body limit and an `application/json` body, that carries no key or an unknown one, whose body does not
validate, whose key may not check for its team, or that fails in any way before `Checker.check` is called, is
handed to the FastAPI app with the body already read replayed, and answered there as before.
Once `Checker.check` has been called the request is never handed over (a reservation must not be made twice): an
exception from the check or after it is answered by the app's own exception handler for its class
(`app.exception_handlers`, the handlers registered in create_app), or, with none, re-raised to the server-error
middleware around this layer (500), as it would be from the FastAPI route.

The metrics are the route's and RequestMetrics' (route label `/v1/check`), plus
`spendstream_api_fast_path_delegated{reason}`: /v1/check requests handed to the FastAPI app, by why (method,
length: chunked or over the limit, content_type, disconnect, key: none or unknown, invalid: the body, forbidden,
error: anything else before the check, e.g. the key store unreachable).
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from starlette.requests import Request

from enforcement.auth import ApiKeys
from enforcement.check_models import CheckRequest
from enforcement.checker import STORE_UNAVAILABLE, Checker
from enforcement.errors import Forbidden, Unauthorized
from enforcement.outcomes import outcome_row
from spendstream.ports import CheckOutcomeLog

__all__ = ["FastCheck", "CheckAnswers", "CHECK_PATH", "api_key_of"]

CHECK_PATH = "/v1/check"
_JSON_HEADER = (b"content-type", b"application/json")


def api_key_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The API key of a request, as the FastAPI `principal` dependency takes it (HTTPBearer and APIKeyHeader with
    auto_error=False): the credentials of the first `Authorization` header when its scheme is Bearer and both are
    non-empty, else the first `X-API-Key` header when non-empty, else None."""
    authorization = api_key = None
    for name, value in headers:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            if api_key is None:
                api_key = value.decode("latin-1")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme and credentials and scheme.lower() == "bearer":
            return credentials
    return api_key or None


class CheckAnswers:
    """What POST /v1/check does once it has a valid request and its caller, for the FastAPI route and the lean path
    alike: the check, its metrics (latency, decision, fail mode), the outcome row, the answer's JSON.
    `metrics` is enforcement.api.Metrics."""

    def __init__(self, checker: Checker, metrics: Any, outcomes: CheckOutcomeLog | None) -> None:
        self.checker, self.metrics, self.outcomes = checker, metrics, outcomes
        self._decisions: dict[str, Any] = {}  # Prometheus children looked up once (.labels() locks, per call)

    async def answer(self, req: CheckRequest, key_id: str) -> bytes:
        m = self.metrics
        t0 = time.perf_counter()
        out = await self.checker.check(req, key_id)
        m.latency.observe(time.perf_counter() - t0)
        decided = self._decisions.get(out.decision)
        if decided is None:
            decided = self._decisions[out.decision] = m.checks.labels(out.decision)
        decided.inc()
        if out.reason.startswith(STORE_UNAVAILABLE):
            m.store_unavailable.inc()
            m.fail_mode.labels("closed" if out.decision == "deny" else "open").inc()
        if self.outcomes is not None:
            self.outcomes.record(outcome_row(req, out, key_id, self.checker.clock_ms()))
        return out.model_dump_json().encode()


class FastCheck:
    """ASGI middleware serving the happy path of POST /v1/check (see the module doc); every other request goes to
    `app` untouched. `limit` is the body limit BodyLimit applies; `exception_handlers` the FastAPI app's (read at
    each use: handlers added later count)."""

    def __init__(self, app, *, answers: CheckAnswers, keys: ApiKeys, limit: int, exception_handlers: dict) -> None:
        self.app, self.answers, self.keys, self.metrics = app, answers, keys, answers.metrics
        self.limit, self.handlers = limit, exception_handlers
        self._requests: dict[int, Any] = {}  # Prometheus children, as in CheckAnswers
        self._seconds = self.metrics.request_seconds.labels(CHECK_PATH)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != CHECK_PATH or scope.get("root_path"):
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        read: list[dict] = []  # the messages taken from `receive`, replayed to the app when it is handed over
        try:
            accepted = await self._accept(scope, receive, read)
        except Exception:  # noqa: BLE001 - whatever it is, the FastAPI app answers it (and raises it again, if so)
            accepted = "error"
        if isinstance(accepted, str):
            self.metrics.fast_path_delegated.labels(accepted).inc()
            return await self.app(scope, _replay(read, receive), send)
        req, who = accepted
        status = 500  # an exception that escapes is answered 500 by the server-error middleware around this layer
        try:
            try:
                body = await self.answers.answer(req, who.key_id)
            except Exception as exc:
                handler = self._handler(exc)
                if handler is None:
                    raise
                response = await handler(Request(scope, _replay(read, receive)), exc)
                status = response.status_code
                return await response(scope, receive, send)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"%d" % len(body)), _JSON_HEADER]})
            status = 200
            await send({"type": "http.response.body", "body": body})
        finally:
            self._count(status, t0)

    async def _accept(self, scope, receive, read: list[dict]):
        """(request, principal) when this layer answers, else why not (a `reason` label)."""
        if scope["method"] != "POST":
            return "method"
        length = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if length is None:
                    length = value
            elif name == b"content-type":
                if content_type is None:
                    content_type = value
        if length is None or not length.isdigit() or int(length) > self.limit:
            return "length"  # chunked, or over the limit (BodyLimit answers 413)
        if content_type is None or content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            return "content_type"
        body = b""
        while True:
            msg = await receive()
            read.append(msg)
            if msg["type"] != "http.request":
                return "disconnect"
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        key = api_key_of(scope["headers"])
        if key is None:
            return "key"
        try:
            who = await self.keys.authenticate(key)
        except Unauthorized:
            return "key"
        try:
            req = CheckRequest.model_validate_json(body)
        except ValueError:
            return "invalid"
        try:
            who.require_check(req.team)
        except Forbidden:
            return "forbidden"
        return req, who

    def _handler(self, exc: Exception) -> Callable[..., Awaitable] | None:
        """The app's handler for `exc` (by class, most specific first, as Starlette's ExceptionMiddleware looks it
        up); None when the app has none below its server-error handler."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None  # a handler for Exception belongs to the server-error middleware
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None

    def _count(self, status: int, t0: float) -> None:
        child = self._requests.get(status)
        if child is None:
            child = self._requests[status] = self.metrics.requests.labels(CHECK_PATH, str(status))
        child.inc()
        self._seconds.observe(time.perf_counter() - t0)


def _replay(messages: list[dict], receive):
    """`receive` with `messages` (already taken from it) given back first."""
    pending = list(messages)

    async def replayed():
        return pending.pop(0) if pending else await receive()

    return replayed
