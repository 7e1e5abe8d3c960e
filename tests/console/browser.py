"""Driving Debian's Chromium headless with Playwright for Python (no `playwright install`: the system browser); and
what every console test needs: API keys made in the API's own key store, a wait for the API process."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000  # a loaded 2-core machine: wait for selectors, generously, never sleep


@contextmanager
def browser_page(shots: Path):
    """A fresh Chromium page; every console message and CSP violation is collected in `page.problems`."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.problems = []
            page.on("console", lambda m: page.problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: page.problems.append(str(e)))
            yield page
        finally:
            browser.close()


def sign_in(page, base: str, key: str, keyboard: bool = False) -> None:
    """Sign in with the mouse, or with the keyboard only (Tab past the skip link to the key field, Enter)."""
    page.goto(f"{base}/ui/sign-in")
    if keyboard:
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "key"
        page.keyboard.type(key)
        with page.expect_navigation():
            page.keyboard.press("Enter")
    else:
        page.get_by_label("API key").fill(key)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
    assert "/ui/sign-in" not in page.url, (page.locator("main").inner_text(), page.problems)


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("h1:text('Sign in')")


def create_keys(settings, specs: dict[str, tuple[str, str, list[str]]]) -> dict[str, str]:
    """{label: (key name, scope, teams)} -> {label: the key}, made in the API's key store (Redis)."""
    import asyncio

    from enforcement.auth import ApiKeys
    from sinks.redis.client import make_redis

    async def make():
        r = make_redis(settings.redis.url, 2.0)
        ak = ApiKeys(r, settings.redis.prefix)
        out = {label: (await ak.create(name, scope, teams))[0] for label, (name, scope, teams) in specs.items()}
        await r.aclose()
        return out

    return asyncio.run(make())


def api_up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
