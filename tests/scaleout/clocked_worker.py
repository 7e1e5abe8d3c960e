"""`python -m tests.scaleout.clocked_worker CLOCK_FILE`: the real worker (`spendstream worker`) on a wall clock the
test sets — epoch ms read from CLOCK_FILE on every now_ms() (the test replaces the file atomically to move time).
Everything else is the production entry point: Settings from the environment, the same build_worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from spendstream.cli.clock import WallClock
from spendstream.cli.worker import run_worker


def file_clock(path: Path) -> WallClock:
    return WallClock(lambda: int(path.read_text()))


def set_clock(path: Path, ms: int) -> None:
    """Move the clock of every worker reading `path` (write then rename: a reader never sees half a number)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(ms))
    os.replace(tmp, path)


if __name__ == "__main__":
    clock_file = Path(sys.argv[1])
    sys.argv = sys.argv[:1]  # faust's Worker reads argv
    run_worker(loglevel="warning", clock=file_clock(clock_file))
