"""Rendering and request plumbing shared by the console's routes: the Jinja2 environment (autoescape on), the
security headers, the signed-in principal from the session cookie, the CSRF check of a posted form."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from enforcement.auth import ApiKeys, Principal
from enforcement.console.session import (CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, cookie_attrs, csrf_ok,
                                         new_csrf_token, parse_form, security_headers)
from enforcement.errors import Unauthorized
from spendstream.money import format_usd, usd_to_nanos

__all__ = ["Pages", "usd", "PREFIX", "EXPIRED"]

PREFIX = "/ui"
EXPIRED = "The form expired (CSRF token missing or wrong): reload the page and try again."
HERE = Path(__file__).parent


def usd(value: int | str | None, places: int = 2) -> str:
    """nano-USD (int) or a USD decimal string -> '1,234.56' (half-even); '—' for None."""
    if value is None:
        return "—"
    n = usd_to_nanos(value) if isinstance(value, str) else value
    text = format_usd(n, places)
    whole, _, frac = text.lstrip("-").partition(".")
    return f"{'-' if text.startswith('-') else ''}{int(whole):,}{'.' + frac if frac else ''}"


def _chart(spec: dict[str, Any]) -> str:
    return json.dumps(spec, separators=(",", ":"))


class Pages:
    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(["html"], default=True), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.filters.update(usd=usd, full_usd=lambda n: format_usd(n) if isinstance(n, int) else n,
                                chart=_chart, when=lambda s: datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M"))
        self.env.globals["prefix"] = PREFIX

    async def who(self, request: Request) -> Principal | None:
        """The signed-in principal, None when there is no session or its key is unknown or revoked."""
        key = request.cookies.get(SESSION_COOKIE)
        if not key:
            return None
        try:
            return await self.keys.authenticate(key)
        except Unauthorized:
            return None

    async def signed_in(self, request: Request, admin_only: str | None = None
                        ) -> tuple[Principal | None, Response | None]:
        """(who, None) for a signed-in key; otherwise (who, the answer to give instead): the sign-in page without a
        session, 403 with the message `admin_only` for a key that is not an admin key when it is given."""
        who = await self.who(request)
        if who is None:
            return None, self.redirect(f"{PREFIX}/sign-in", request)
        if admin_only is not None and who.scope != "admin":
            return who, self.refuse(request, who, 403, admin_only)
        return who, None

    async def posted(self, request: Request, admin_only: str | None = None
                     ) -> tuple[Principal | None, dict[str, str], Response | None]:
        """`signed_in`, then the posted form with its CSRF token checked: (who, form, the answer instead or None)."""
        who, refused = await self.signed_in(request, admin_only)
        if refused is not None:
            return who, {}, refused
        form, ok = await self.form(request)
        return who, form, None if ok else self.refuse(request, who, 403, EXPIRED)

    def render(self, request: Request, template: str, ctx: dict[str, Any], status: int = 200,
               who: Principal | None = None) -> HTMLResponse:
        token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        html = self.env.get_template(template).render(**ctx, who=who, csrf=token, csrf_field=CSRF_FIELD,
                                                      path=request.url.path)
        resp = HTMLResponse(html, status_code=status, headers=security_headers())
        if request.cookies.get(CSRF_COOKIE) != token:
            resp.set_cookie(CSRF_COOKIE, token, **cookie_attrs())
        return resp

    def refuse(self, request: Request, who: Principal | None, status: int, message: str) -> HTMLResponse:
        return self.render(request, "error.html", {"status": status, "message": message}, status, who)

    @staticmethod
    def redirect(url: str, request: Request | None = None) -> RedirectResponse:
        """303 to `url`; to an htmx request, a 401 with HX-Redirect (htmx would swap the sign-in page in)."""
        if request is not None and request.headers.get("hx-request"):
            return RedirectResponse(url, 401, headers={**security_headers(False), "HX-Redirect": url})
        return RedirectResponse(url, 303, headers=security_headers(False))

    @staticmethod
    async def form(request: Request) -> tuple[dict[str, str], bool]:
        """(the posted form, whether its CSRF token is good)."""
        form = parse_form(await request.body())
        ok = csrf_ok(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD), request.headers,
                     str(request.base_url))
        return form, ok
