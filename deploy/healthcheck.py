"""Container healthcheck for the spendstream image (stdlib only; the slim image has no curl).

    python /app/deploy/healthcheck.py api      GET /readyz on 127.0.0.1:$SPENDSTREAM_API__PORT (200 = Redis answers)
    python /app/deploy/healthcheck.py worker   GET /metrics on 127.0.0.1:$SPENDSTREAM_WORKER__WEB_PORT (Faust web)

The API's ops endpoints want a key: with SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY set, /readyz must answer 200; without
it any HTTP answer (401 included) shows the process serves. Exit 0 = healthy, 1 = not (the reason on stderr).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TARGETS = {
    "api": ("SPENDSTREAM_API__PORT", "18080", "/readyz"),
    "worker": ("SPENDSTREAM_WORKER__WEB_PORT", "16066", "/metrics"),
}


def check(target: str, timeout: float = 3.0) -> str | None:
    """None when healthy, else why not."""
    port_var, default_port, path = TARGETS[target]
    url = f"http://127.0.0.1:{os.environ.get(port_var) or default_port}{path}"
    headers = {}
    key = os.environ.get("SPENDSTREAM_API__BOOTSTRAP_ADMIN_KEY") if target == "api" else None
    if key:
        headers["authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            return None if resp.status == 200 else f"{url}: HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        if target == "api" and not key and exc.code == 401:
            return None  # serving; readiness needs the bootstrap key
        return f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in TARGETS:
        print(f"usage: healthcheck.py {'|'.join(TARGETS)}", file=sys.stderr)
        return 2
    why = check(argv[0])
    if why:
        print(f"unhealthy: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
