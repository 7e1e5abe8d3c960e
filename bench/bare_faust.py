"""The bare-Faust baseline: an agent that does nothing but count raw messages. Run by bench/stream.py as
`python bench/bare_faust.py BOOTSTRAP TOPIC N OUT.json`; writes {events, seconds, events_per_s} and exits."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import faust


def main() -> None:
    bootstrap, topic_name, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    app = faust.App(f"bare-{uuid.uuid4().hex[:6]}", broker=f"kafka://{bootstrap}", broker_session_timeout=6,
                    topic_allow_declare=False, web_enabled=False, store="memory://")
    topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
    state = {"n": 0, "t0": 0.0}

    @app.agent(topic)
    async def count(stream):
        async for _ in stream:
            state["n"] += 1
            if state["n"] == 1:
                state["t0"] = time.perf_counter()
            elif state["n"] == n:
                dt = time.perf_counter() - state["t0"]
                with open(out, "w") as f:
                    json.dump({"events": n - 1, "seconds": dt, "events_per_s": (n - 1) / dt}, f)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "error"]
    app.main()


if __name__ == "__main__":
    main()
