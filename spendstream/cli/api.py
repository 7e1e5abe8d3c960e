"""`spendstream api`: the enforcement HTTP API."""

from __future__ import annotations

import typer

from spendstream.cli._common import settings_or_exit
from spendstream.cli.files import price_book_for

__all__ = ["register", "build_api"]


def build_api(settings):
    """The FastAPI app with its concrete Redis client, price book and key store, from Settings."""
    from enforcement.api import create_app
    from enforcement.auth import ApiKeys
    from enforcement.checker import Checker
    from sinks.redis.client import make_redis
    from sinks.redis.reservations import Reservations
    from sinks.redis.spend_store import RedisSpendStore
    from sinks.redis.rate_limits import RateLimits
    from sinks.redis.throttle import Throttle
    from spendstream.cli.clock import SystemClock

    r = make_redis(settings.redis.url, settings.redis.socket_timeout_s)
    store = RedisSpendStore(r, settings.redis.prefix)
    prices = price_book_for(settings.worker.price_book)
    bootstrap = settings.api.bootstrap_admin_key
    keys = ApiKeys(r, settings.redis.prefix, bootstrap_admin_key=bootstrap.get_secret_value() if bootstrap else None)
    checker = Checker(store, Reservations(r, settings.redis.prefix), Throttle(r, settings.redis.prefix), prices,
                      SystemClock(), fiscal_start_month=settings.budgets.fiscal_year_start_month,
                      rates=RateLimits(r, settings.redis.prefix))
    return create_app(checker, keys)


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: str = typer.Option(None, help="Listen address (default SPENDSTREAM_API__HOST, 127.0.0.1)"),
        port: int = typer.Option(None, help="Port (default SPENDSTREAM_API__PORT, 18080)"),
    ) -> None:
        """Run the enforcement API: POST /v1/check before calling a model."""
        import uvicorn

        s = settings_or_exit()
        uvicorn.run(build_api(s), host=host or s.api.host, port=port or s.api.port, log_level="warning",
                    access_log=False)
