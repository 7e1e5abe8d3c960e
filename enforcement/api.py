"""The enforcement HTTP API (FastAPI). Built by `create_app` from concrete objects.

Errors map to HTTP here, in one place (`_STATUS`): bad body / query -> 422 with a message, no or unknown key -> 401,
a key outside its scope or teams -> 403, unknown budget -> 404, existing budget -> 409, spend store unreachable
on an admin or read call -> 503. /v1/check never answers 5xx for the store: it answers by the budgets' fail modes.
Every endpoint needs an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`); /openapi.json is public.
"""


import time
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel

from enforcement.api_admin import admin_router
from enforcement.auth import ApiKeys, Principal
from enforcement.checker import STORE_UNAVAILABLE, Checker, CheckRequest, CheckResponse
from enforcement.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthorized
from enforcement.queries import Queries
from spendstream.errors import ConfigError, InvalidEvent, SpendstreamError, StoreUnavailable

__all__ = ["create_app", "Metrics"]

_STATUS: list[tuple[type[SpendstreamError], int]] = [
    (Unauthorized, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409), (InvalidRequest, 422),
    (ConfigError, 422), (InvalidEvent, 422), (StoreUnavailable, 503), (SpendstreamError, 400),
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


class ReleaseResponse(BaseModel):
    reservation_id: str
    released: bool


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def create_app(checker: Checker, keys: ApiKeys, *,
               metrics: Metrics | None = None) -> FastAPI:
    """The API over `checker` (budgets, spend, reservations) and `keys` (authentication)."""
    app = FastAPI(title="spendstream enforcement API", version="1",
                  description="Ask before calling a model: budgets, reservations, live spend.")
    metrics = metrics or Metrics()
    queries = Queries(checker)

    async def principal(bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                        api_key: Annotated[str | None, Depends(_header)]) -> Principal:
        return await keys.authenticate(bearer.credentials if bearer else api_key)

    Caller = Annotated[Principal, Depends(principal)]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "detail": msgs}, status_code=422)

    for cls, status in _STATUS:
        app.add_exception_handler(cls, _handler(status))

    @app.get("/healthz", tags=["ops"])
    async def healthz(who: Caller) -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": STORE_UNAVAILABLE}})
    async def readyz(who: Caller) -> JSONResponse:
        """Readiness: the spend store answers."""
        try:
            await checker.store.ping()
        except Exception as exc:  # any failure to reach the store means not ready
            return JSONResponse({"status": STORE_UNAVAILABLE, "detail": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus(who: Caller) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/check", response_model=CheckResponse, tags=["enforcement"],
              responses={401: {"description": "no or unknown key"}, 403: {"description": "team not allowed"}})
    async def check(req: CheckRequest, who: Caller) -> Response:
        """Decide allow | warn | throttle | deny | downgrade for a call about to be made; with `reserve: true`
        hold the estimate (released by the priced event carrying reservation_id, by release, or by expiry)."""
        who.require_check(req.team)
        t0 = time.perf_counter()
        out = await checker.check(req, who.key_id)
        metrics.latency.observe(time.perf_counter() - t0)
        metrics.checks.labels(out.decision).inc()
        if out.reason.startswith(STORE_UNAVAILABLE):
            metrics.store_unavailable.inc()
        # the hot path: serialize once here instead of FastAPI re-validating the response model
        return Response(out.model_dump_json(), media_type="application/json")

    @app.post("/v1/reservations/{reservation_id}/release", response_model=ReleaseResponse, tags=["enforcement"])
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
    return app


def _handler(status: int):
    async def handle(request: Request, exc: SpendstreamError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    return handle
