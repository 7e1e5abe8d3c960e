"""The console's pages under /ui: sign-in / sign-out, overview (admin), team (a read key: its own teams only), and
their live fragments (htmx polls them). Budgets and reports are in routes_admin.py. Every route is excluded from
the OpenAPI schema (it is HTML, not API); static files (vendored htmx and uPlot, the console's own JS and CSS)
are served from the package, no CDN."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from enforcement.auth import ApiKeys
from enforcement.checker import Checker
from enforcement.console.charts import overview_charts, team_charts
from enforcement.console.jobs import ReportJobs
from enforcement.console.pages import HERE, PREFIX, Pages
from enforcement.console.routes_admin import admin_pages
from enforcement.console.session import COOKIE_PATH, CSRF_COOKIE, SESSION_COOKIE, cookie_attrs
from enforcement.console.views import ConsoleData
from enforcement.errors import Unauthorized
from spendstream.alerts import AlertPolicy
from spendstream.errors import StoreUnavailable

__all__ = ["ConsoleDeps", "mount_console"]


@dataclass
class ConsoleDeps:
    """What the console needs besides the API's checker and keys: ClickHouse (a client factory and the database,
    for alerts, unit costs and the budget history), where report jobs write, and the forecast policy."""

    connect: Callable[[], Any] | None
    database: str
    reports_dir: Path
    report_env: dict[str, str] | None = None
    policy: AlertPolicy | None = None


def _first_team(teams: tuple[str, ...]) -> str | None:
    return next((t for t in teams if t != "*"), None)


def mount_console(app: FastAPI, checker: Checker, keys: ApiKeys, history: Callable[..., list] | None,
                  deps: ConsoleDeps) -> None:
    pages = Pages(keys)
    data = ConsoleData(checker, history, deps.connect, deps.database, deps.policy)
    jobs = ReportJobs(deps.reports_dir, deps.report_env)
    r = APIRouter(prefix=PREFIX, include_in_schema=False)

    @r.get("/sign-in")
    async def sign_in_page(request: Request) -> Response:
        return pages.render(request, "sign_in.html", {"error": None})

    @r.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form, ok = await pages.form(request)
        if not ok:
            return pages.render(request, "sign_in.html", {"error": "The form expired: sign in again."}, 403)
        try:
            who = await keys.authenticate(form.get("key", "").strip())
        except Unauthorized:
            return pages.render(request, "sign_in.html", {"error": "Unknown or revoked key."}, 401)
        if who.scope not in ("read", "admin"):
            return pages.render(request, "sign_in.html",
                                {"error": f"A {who.scope!r} key cannot use the console: use a read or admin key."}, 403)
        resp = pages.redirect(f"{PREFIX}/")
        resp.set_cookie(SESSION_COOKIE, form["key"].strip(), **cookie_attrs())
        return resp

    @r.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        _, ok = await pages.form(request)
        if not ok:
            return pages.refuse(request, await pages.who(request), 403, "The form expired: reload and try again.")
        resp = pages.redirect(f"{PREFIX}/sign-in")
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            resp.delete_cookie(name, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict")
        return resp

    @r.get("/")
    async def home(request: Request) -> Response:
        who, refused = await pages.signed_in(request)
        if refused:
            return refused
        if who.scope != "admin":
            team = _first_team(who.teams)
            if team is None:
                return pages.refuse(request, who, 403, "This key reads every team: open /ui/team/NAME.")
            return pages.redirect(f"{PREFIX}/team/{team}")
        view = await data.overview()
        return pages.render(request, "overview.html", {"v": view, "charts": overview_charts(view)}, who=who)

    @r.get("/live/overview")
    async def overview_live(request: Request) -> Response:
        who, refused = await pages.signed_in(request, "The overview is for admin keys.")
        if refused:
            return refused
        view = await data.overview(history=False)
        return pages.render(request, "_overview_live.html", {"v": view}, who=who)

    async def _team(request: Request, team: str, template: str) -> Response:
        who, refused = await pages.signed_in(request)
        if refused:
            return refused
        if not who.can_read(team):
            return pages.refuse(request, who, 403, f"Key {who.name!r} may not read team {team!r}.")
        full = template == "team.html"
        view = await data.team(team, history=full)
        charts = team_charts(view) if full else {}
        return pages.render(request, template, {"v": view, "charts": charts}, who=who)

    @r.get("/team/{team}")
    async def team_page(request: Request, team: str) -> Response:
        return await _team(request, team, "team.html")

    @r.get("/team/{team}/live")
    async def team_live(request: Request, team: str) -> Response:
        return await _team(request, team, "_team_live.html")

    admin_pages(r, pages, checker, jobs, data)
    app.include_router(r)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")

    api_handler = app.exception_handlers.get(StoreUnavailable)

    @app.exception_handler(StoreUnavailable)
    async def _store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
        """An HTML page on the console, the API's own JSON answer elsewhere."""
        if request.url.path.startswith(PREFIX) or api_handler is None:
            return pages.refuse(request, None, 503, f"The spend store is unavailable: {exc}")
        return await api_handler(request, exc)
