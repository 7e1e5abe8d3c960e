"""The enforcement HTTP API (FastAPI). Built by `create_app` from concrete objects.

Errors map to HTTP here, in one place (`_STATUS`): bad body / query -> 422 with a message, no or unknown key -> 401,
a key outside its scope or teams -> 403, unknown budget -> 404, existing budget -> 409, spend store unreachable
on an admin or read call -> 503, a body over `max_body_bytes` -> 413 (the ingestion routes have their own,
larger limits). /v1/check never answers 5xx for the store: it answers by the budgets' fail modes.
A body or batch over the ingestion limits -> 413, an unreadable body -> 400.
Every endpoint needs an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`); /openapi.json is public.
The console (/ui, HTML, not in the schema) takes the same keys from its sign-in cookie.

Request path: the happy path of POST /v1/check (a key allowed to check, a valid JSON body with a Content-Length) is
answered by the lean layer in front of the app (enforcement/fast_check.py: no dependency solving, validation
machinery or inner middlewares, about half the CPU per check); everything else - the other routes and every /v1/check
that is not that happy path - goes through RequestMetrics, BodyLimit and the FastAPI routes below, which stay the one
home of the error answers and of the OpenAPI schema. The check's own work after validation (metrics, outcome row,
answer) is CheckAnswers, the same for both.
"""


import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Callable

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel

from enforcement.api_admin import admin_router, error_responses
from enforcement.api_usage import HistoryUnavailable, usage_router
from enforcement.auth import ApiKeys, Principal
from enforcement.ingest import ingest_router
from enforcement.intake import Admitted, EventIntake
from enforcement.otlp import otlp_router
from enforcement.fast_check import CheckAnswers, FastCheck
from enforcement.checker import STORE_UNAVAILABLE, Checker, CheckRequest, CheckResponse
from enforcement.errors import (Conflict, Forbidden, InvalidRequest, MalformedBody, NotFound, PayloadTooLarge,
                                Unauthorized)
from enforcement.queries import Queries
if TYPE_CHECKING:
    from enforcement.console import ConsoleDeps
from spendstream.errors import ConfigError, InvalidEvent, SpendstreamError, StoreUnavailable
from spendstream.ports import CheckOutcomeLog

__all__ = ["create_app", "Metrics", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a check or a budget is a few hundred bytes

_STATUS: list[tuple[type[SpendstreamError], int]] = [
    (Unauthorized, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409), (InvalidRequest, 422),
    (ConfigError, 422), (InvalidEvent, 422), (MalformedBody, 400), (PayloadTooLarge, 413), (StoreUnavailable, 503),
    (HistoryUnavailable, 503), (SpendstreamError, 400),
]


class Metrics:
    """The API's Prometheus metrics, in a registry of its own (no module-level globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter("spendstream_api_checks", "Checks answered, by decision", ["decision"],
                              registry=self.registry)
        self.store_unavailable = Counter("spendstream_api_store_unavailable", "Checks answered by fail mode",
                                         registry=self.registry)
        self.latency = Histogram("spendstream_api_check_seconds", "Check latency inside the app",
                                 buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
                                 registry=self.registry)
        self.outcomes_dropped = Counter("spendstream_api_check_outcomes_dropped", "Check outcome rows dropped "
                                        "because ClickHouse was away longer than the queue holds",
                                        registry=self.registry)
        self.ingested = Counter("spendstream_api_ingested_events", "Events received by /v1/events and OTLP",
                                ["way", "outcome"], registry=self.registry)
        self.fail_mode = Counter("spendstream_api_fail_mode_answers", "Checks answered without the spend store, by "
                                 "the fail mode applied (open = allowed blind, closed = denied)", ["mode"],
                                 registry=self.registry)
        self.requests = Counter("spendstream_api_requests", "HTTP requests answered, by route template and status",
                                ["route", "status"], registry=self.registry)
        self.request_seconds = Histogram("spendstream_api_request_seconds", "HTTP request time inside the app, by "
                                         "route template", ["route"],
                                         buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                  1, 2.5), registry=self.registry)
        self.fast_path_delegated = Counter("spendstream_api_fast_path_delegated", "POST /v1/check requests the "
                                           "lean path (enforcement/fast_check.py) handed to the FastAPI app, by why "
                                           "(errors, unusual requests)", ["reason"], registry=self.registry)

    def count_ingested(self, way: str, admitted: Admitted) -> None:
        self.ingested.labels(way, "accepted").inc(len(admitted.accepted))
        self.ingested.labels(way, "rejected").inc(len(admitted.rejected))


class ReleaseResponse(BaseModel):
    reservation_id: str
    released: bool


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def create_app(checker: Checker, keys: ApiKeys, *, metrics: Metrics | None = None,
               history: Callable[..., list] | None = None, intake: EventIntake | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, outcomes: CheckOutcomeLog | None = None,
               console: "ConsoleDeps | None" = None) -> FastAPI:
    """The API over `checker` (budgets, spend, reservations) and `keys` (authentication); with `history` (the
    ClickHouse rollup reader, reports.usage.UsageHistory) also GET /v1/usage; with `intake`, also the ingestion
    endpoints (/v1/events, /v1/otlp/v1/traces); with `outcomes`, every answered check is recorded there
    (`check_outcomes`), started and closed with the app; with `console`, the web console under /ui
    (enforcement/console/)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        start = getattr(outcomes, "start", None)
        if start is not None:
            start()
        try:
            yield
        finally:
            if outcomes is not None:
                await outcomes.close()

    app = FastAPI(title="spendstream enforcement API", version="1", lifespan=lifespan,
                  description="Ask before calling a model: budgets, reservations, live spend.")
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    metrics = metrics or Metrics()
    app.add_middleware(RequestMetrics, metrics=metrics)  # added after BodyLimit = outside it: 413s are counted too
    # outermost: the happy path of POST /v1/check answered without the FastAPI machinery; the rest goes on inside
    answers = CheckAnswers(checker, metrics, outcomes)
    app.add_middleware(FastCheck, answers=answers, keys=keys, limit=max_body_bytes,
                       exception_handlers=app.exception_handlers)
    queries = Queries(checker)

    async def principal(bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                        api_key: Annotated[str | None, Depends(_header)]) -> Principal:
        return await keys.authenticate(bearer.credentials if bearer else api_key)

    Caller = Annotated[Principal, Depends(principal)]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "detail": msgs}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (e.g. JSON that is not UTF-8): a bad body
            return JSONResponse({"error": "invalid request", "detail": [f"body: {exc.detail}"]}, status_code=422)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    for cls, status in _STATUS:
        app.add_exception_handler(cls, _handler(status))

    @app.get("/healthz", tags=["ops"], responses=error_responses(401))
    async def healthz(who: Caller) -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": STORE_UNAVAILABLE}, **error_responses(401)})
    async def readyz(who: Caller) -> JSONResponse:
        """Readiness: the spend store answers."""
        try:
            await checker.store.ping()
        except Exception as exc:  # any failure to reach the store means not ready
            return JSONResponse({"status": STORE_UNAVAILABLE, "detail": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], response_class=Response, responses=error_responses(401))
    async def prometheus(who: Caller) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/check", response_model=CheckResponse, tags=["enforcement"],
              responses=error_responses(401, 403, 413, 422))
    async def check(req: CheckRequest, who: Caller) -> Response:
        """Decide allow | warn | throttle | deny | downgrade for a call about to be made; with `reserve: true`
        hold the estimate (released by the priced event carrying reservation_id, by release, or by expiry)."""
        who.require_check(req.team)
        # serialized once (CheckAnswers) instead of FastAPI re-validating the response model; the happy path of
        # this route is answered by the lean path in front (FastCheck), this one answers what it hands over
        return Response(await answers.answer(req, who.key_id), media_type="application/json")

    @app.post("/v1/reservations/{reservation_id}/release", response_model=ReleaseResponse, tags=["enforcement"],
              responses=error_responses(401, 403, 422))
    async def release(reservation_id: str, who: Caller) -> ReleaseResponse:
        """Release the hold of a call that was not made. Idempotent: released is false when nothing was held
        any more (settled, released or expired)."""
        owner = await checker.reservations.owner(reservation_id)
        if owner is None:
            who.require_check(who.teams[0] if who.teams else "")
            return ReleaseResponse(reservation_id=reservation_id, released=False)
        who.require_check(owner)
        return ReleaseResponse(reservation_id=reservation_id,
                               released=await checker.reservations.release(reservation_id))

    app.include_router(admin_router(checker, queries, principal))
    if history is not None:
        app.include_router(usage_router(history, principal))
    if intake is not None:
        app.include_router(ingest_router(intake, principal, metrics.count_ingested))
        app.include_router(otlp_router(intake, principal, metrics.count_ingested))
    if console is not None:
        from enforcement.console import mount_console

        mount_console(app, checker, keys, history, console)
    return app


INGEST_PATHS = ("/v1/events", "/v1/otlp/")


class RequestMetrics:
    """ASGI middleware: count each HTTP request by route template (`/v1/budgets/{budget_id}`, never the raw path,
    so the label set stays bounded; `unmatched` for 404s of unknown paths) and status, and time it."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500  # an exception that escapes the app is answered 500 by the server

        async def send_status(msg) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - t0)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 with a JSON message before any route
    reads it — by its Content-Length, or (chunked, no length) by buffering at most `limit` bytes."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(INGEST_PATHS):
            return await self.app(scope, receive, send)  # the ingestion routes enforce their own, larger limits
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None:
            if length.isdigit() and int(length) <= self.limit:
                return await self.app(scope, receive, send)
            return await self._too_large(send, int(length) if length.isdigit() else None)
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:  # no Content-Length: read (bounded) before the app does
            msg = await receive()
            if msg["type"] != "http.request":
                chunks.append(msg)
                break
            size += len(msg.get("body", b""))
            if size > self.limit:
                return await self._too_large(send, None)
            chunks.append(msg)
            if not msg.get("more_body"):
                break

        async def replay():
            return chunks.pop(0) if chunks else await receive()

        return await self.app(scope, replay, send)

    async def _too_large(self, send, length: int | None) -> None:
        size = f"{length} bytes" if length is not None else f"more than {self.limit} bytes"
        resp = JSONResponse({"error": f"request body too large: {size}; at most {self.limit} bytes"},
                            status_code=413)
        await send({"type": "http.response.start", "status": 413, "headers": resp.raw_headers})
        await send({"type": "http.response.body", "body": resp.body})


def _handler(status: int):
    async def handle(request: Request, exc: SpendstreamError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    return handle
