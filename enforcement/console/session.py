"""Sign-in cookie and CSRF tokens of the console. Pure functions of the request's cookies, form and headers.

Contract:
- The session cookie holds the API key the user pasted: Secure, HttpOnly, SameSite=Strict, Path=/ui, never in a
  URL, never logged. Every request re-authenticates it with the API's own key store (a revoked key stops working).
- CSRF: double-submit token. `csrf_token` is a random value kept in its own cookie (same attributes); every
  state-changing form posts it back in the `csrf` field. `csrf_ok` accepts a POST only when the field equals the
  cookie (constant-time) and, when the browser sends them, Origin is this host and Sec-Fetch-Site is same-origin.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Mapping
from urllib.parse import parse_qs, urlsplit

__all__ = ["SESSION_COOKIE", "CSRF_COOKIE", "CSRF_FIELD", "COOKIE_PATH", "cookie_attrs", "new_csrf_token",
           "csrf_ok", "parse_form", "security_headers", "CSP"]

SESSION_COOKIE = "ss_console"
CSRF_COOKIE = "ss_console_csrf"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/ui"
SESSION_MAX_AGE_S = 12 * 3600

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def cookie_attrs(max_age: int = SESSION_MAX_AGE_S) -> dict:
    """Keyword arguments of Response.set_cookie for both console cookies."""
    return {"max_age": max_age, "path": COOKIE_PATH, "secure": True, "httponly": True, "samesite": "strict"}


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(cookie: str | None, field: str | None, headers: Mapping[str, str], host_url: str) -> bool:
    """True when a POST carries the CSRF cookie's value in its form and comes from this origin (see contract)."""
    if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
        return False
    origin = headers.get("origin")
    if origin and origin != "null":
        want = urlsplit(host_url)
        got = urlsplit(origin)
        if (got.scheme, got.netloc) != (want.scheme, want.netloc):
            return False
    elif origin == "null":
        return False
    site = headers.get("sec-fetch-site")
    return site in (None, "same-origin", "none")


def parse_form(body: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded -> {name: last value}; blank values kept as ''."""
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def security_headers(html: bool = True) -> dict[str, str]:
    """Headers of every console answer: a strict CSP (no inline script or style), no sniffing, no framing, the
    referrer only to this origin (with `no-referrer` Chromium posts forms with `Origin: null`, which csrf_ok
    refuses), and pages never cached (they show spend)."""
    h = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}
    if html:
        h |= {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}
    return h
