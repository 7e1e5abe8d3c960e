"""The enforcement HTTP API (FastAPI). Built by `create_app` from concrete objects; errors map to HTTP here,
in one place: validation -> 422 with a message, SpendstreamError -> 4xx, never a 5xx for bad input.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from enforcement.checker import Checker, CheckRequest, CheckResponse
from spendstream.errors import ConfigError, SpendstreamError

__all__ = ["create_app"]


def create_app(checker: Checker) -> FastAPI:
    app = FastAPI(title="spendstream enforcement API", version="1", description="Ask before calling a model.")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "detail": msgs}, status_code=422)

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(SpendstreamError)
    async def _ours(request: Request, exc: SpendstreamError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/v1/check", response_model=CheckResponse)
    async def check(req: CheckRequest) -> CheckResponse:
        """Decide allow | warn | throttle | deny | downgrade for a call about to be made."""
        return await checker.check(req)

    return app
