"""deploy/healthcheck.py, the compose healthcheck of the worker and API containers, against a loopback server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import ROOT, free_port

SCRIPT = ROOT / "deploy" / "healthcheck.py"


@pytest.fixture
def server():
    """A server answering each path with the status in `answers`; records the authorization headers seen."""
    state = {"answers": {}, "auth": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            state["auth"].append(self.headers.get("authorization"))
            self.send_response(state["answers"].get(self.path, 404))
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state["port"] = httpd.server_address[1]
    yield state
    httpd.shutdown()
    httpd.server_close()


def _check(target: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPENDSTREAM_")}
    return subprocess.run([sys.executable, str(SCRIPT), target], env={**clean, **env}, capture_output=True, text=True,
                          timeout=30)


def test_worker_is_healthy_when_faust_web_serves_metrics(server):
    server["answers"]["/metrics"] = 200
    assert _check("worker", SPENDSTREAM_WORKER__WEB_PORT=str(server["port"])).returncode == 0
    server["answers"]["/metrics"] = 500
    run = _check("worker", SPENDSTREAM_WORKER__WEB_PORT=str(server["port"]))
    assert run.returncode == 1 and "HTTP 500" in run.stderr


def test_nothing_listening_is_unhealthy():
    run = _check("worker", SPENDSTREAM_WORKER__WEB_PORT=str(free_port()))
    assert run.returncode == 1 and "unhealthy" in run.stderr


def test_api_readiness_uses_the_bootstrap_admin_key(server):
    port = str(server["port"])
    server["answers"]["/readyz"] = 200
    assert _check("api", SPENDSTREAM_API__PORT=port, SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY="k1").returncode == 0
    assert server["auth"][-1] == "Bearer k1"
    server["answers"]["/readyz"] = 503  # Redis unreachable
    assert _check("api", SPENDSTREAM_API__PORT=port, SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY="k1").returncode == 1
    server["answers"]["/readyz"] = 401  # a wrong key is a broken deployment
    assert _check("api", SPENDSTREAM_API__PORT=port, SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY="k1").returncode == 1


def test_api_without_a_key_counts_an_unauthorized_answer_as_serving(server):
    server["answers"]["/readyz"] = 401
    assert _check("api", SPENDSTREAM_API__PORT=str(server["port"])).returncode == 0
    assert server["auth"][-1] is None


def test_unknown_target_is_a_usage_error():
    assert _check("kafka").returncode == 2
