"""`spendstream demo --serve`: the team lead's journey. The demo runs, the API stays up, the printed key opens
the console, and the console shows the demo's spend (the same figure GET /v1/spend gives). Ctrl-C stops it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from spendstream.money import usd_to_nanos
from tests.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def _console_page(base: str, key: str, path: str) -> httpx.Response:
    """Sign in as a browser would (CSRF token from the form, the Secure cookies sent back by hand: httpx keeps
    Secure cookies for https only) and fetch `path`."""
    with httpx.Client(base_url=base, timeout=30) as c:
        page = c.get("/ui/sign-in")
        csrf = page.cookies["ss_console_csrf"]
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert token == csrf
        signed = c.post("/ui/sign-in", data={"key": key, "csrf": token}, headers={"cookie": f"ss_console_csrf={csrf}"})
        assert signed.status_code == 303, signed.text
        session = signed.cookies["ss_console"]
        return c.get(path, headers={"cookie": f"ss_console={session}; ss_console_csrf={csrf}"})


def test_demo_serve_keeps_the_console_up_with_a_key_that_shows_the_demos_spend(tmp_path):
    ports = {name: free_port() for name in ("kafka", "redis", "api", "web", "clickhouse")}
    args = [sys.executable, "-m", "spendstream", "demo", "--serve", "--seconds", "4", "--rate", "500",
            "--state-dir", str(tmp_path / "demo"), *(a for n, p in ports.items() for a in (f"--{n}-port", str(p)))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDSTREAM_")}
    proc = subprocess.Popen(args, cwd=ROOT, env={**env, "COLUMNS": "200"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("admin key" in ln for ln in lines) or proc.poll() is not None, 300,
                   what="the demo to print the console keys")
        out = "".join(lines)
        assert proc.poll() is None, out
        url = re.search(r"web console: (http://127\.0\.0\.1:\d+/ui/)", out).group(1)
        key = re.search(r"read key, team payments: (ss_\S+)", out).group(1)
        base = url.removesuffix("/ui/")
        assert base == f"http://127.0.0.1:{ports['api']}"

        page = _console_page(base, key, "/ui/")
        assert page.status_code == 303 and page.headers["location"] == "/ui/team/payments"
        team = _console_page(base, key, "/ui/team/payments")
        assert team.status_code == 200
        shown = re.search(r'<data id="team-spent" value="([0-9.]+)">', team.text).group(1)
        spend = httpx.get(f"{base}/v1/spend", params={"scope": "team:payments"}, timeout=10,
                          headers={"authorization": f"Bearer {key}"}).json()
        assert shown == spend["spent_usd"] and usd_to_nanos(shown) > 0  # the demo's spend, on the console
        assert _console_page(base, key, "/ui/team/search").status_code == 403
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reader.join(5)
    assert "Ctrl-C" in "".join(lines[-5:]) or proc.returncode == 0, "".join(lines[-20:])
    with pytest.raises(httpx.TransportError):  # the API is gone with it
        httpx.get(f"http://127.0.0.1:{ports['api']}/openapi.json", timeout=2)
