"""Report jobs of the console: the weekly digest, the monthly review and the FOCUS export, built by the CLI's own
commands in a child process at low priority (`nice`), never on the API's event loop or in its GIL, so /v1/check
keeps its latency while a report is built. One job runs at a time; the rest wait their turn. Files land in a
directory per job; only files listed there can be downloaded."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ReportJobs", "Job", "REVIEW_MODELS", "job_args"]

log = logging.getLogger(__name__)
REVIEW_MODELS = ("real-cost", "proportional", "pool", "budget")
_WEEK, _MONTH = re.compile(r"^\d{4}-W\d{2}$"), re.compile(r"^\d{4}-\d{2}$")
_seq = itertools.count(1)


@dataclass
class Job:
    id: str
    kind: str          # weekly | monthly | focus
    period: str
    owner: str         # the key id that asked (a read key sees its own jobs, admin sees all)
    args: list[str]
    dir: Path
    status: str = "queued"   # queued | running | done | failed
    message: str = ""
    started: float = field(default_factory=time.time)
    seconds: float | None = None

    @property
    def files(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir() if p.is_file()) if self.dir.exists() else []


def job_args(kind: str, period: str, out: Path, *, model: str = "real-cost", teams: tuple[str, ...] = ()) -> list[str]:
    """The spendstream CLI arguments of a report. Raises ValueError on a bad kind, period or model."""
    if kind == "weekly":
        if not _WEEK.match(period):
            raise ValueError(f"week must look like 2026-W47, not {period!r}")
        return ["digest", "weekly", "--week", period, "--out", str(out), *(a for t in teams for a in ("--team", t))]
    if not _MONTH.match(period):
        raise ValueError(f"month must look like 2026-11, not {period!r}")
    if kind == "monthly":
        if model not in REVIEW_MODELS:
            raise ValueError(f"model must be one of {', '.join(REVIEW_MODELS)}")
        return ["review", "monthly", "--month", period, "--model", model, "--out", str(out)]
    if kind == "focus":
        return ["export", "focus", "--month", period, "--out", str(out / f"focus-{period}.csv")]
    raise ValueError(f"report must be weekly, monthly or focus, not {kind!r}")


class ReportJobs:
    """Queue and run report jobs; `env` is the child's environment (the API's own settings)."""

    def __init__(self, root: Path, env: dict[str, str] | None = None, keep: int = 50) -> None:
        self.root, self.env, self.keep = root, env, keep
        self.jobs: dict[str, Job] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    def start(self, kind: str, period: str, owner: str, *, model: str = "real-cost",
              teams: tuple[str, ...] = ()) -> Job:
        """Queue a job; raises ValueError on bad parameters."""
        job_id = f"{next(_seq):04d}-{secrets.token_hex(4)}"
        out = self.root / job_id
        job = Job(job_id, kind, period if kind != "monthly" else f"{period} ({model})", owner,
                  job_args(kind, period, out, model=model, teams=teams), out)
        self.jobs[job_id] = job
        self._forget_old()
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def visible(self, key_id: str, admin: bool) -> list[Job]:
        return sorted((j for j in self.jobs.values() if admin or j.owner == key_id), key=lambda j: j.id, reverse=True)

    async def wait(self, job: Job, timeout: float) -> Job:
        """Until `job` is done or failed (tests, the bench)."""
        deadline = time.monotonic() + timeout
        while job.status in ("queued", "running") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return job

    def _forget_old(self) -> None:
        done = [j for j in sorted(self.jobs.values(), key=lambda j: j.id) if j.status in ("done", "failed")]
        for j in done[:max(0, len(self.jobs) - self.keep)]:
            shutil.rmtree(j.dir, ignore_errors=True)
            del self.jobs[j.id]

    async def _run(self, job: Job) -> None:
        async with self._lock:
            job.status, t0 = "running", time.monotonic()
            job.dir.mkdir(parents=True, exist_ok=True)
            nice = ["nice", "-n", "15"] if shutil.which("nice") else []
            try:
                proc = await asyncio.create_subprocess_exec(
                    *nice, sys.executable, "-m", "spendstream", *job.args, env=self.env or dict(os.environ),
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT)
                out, _ = await proc.communicate()
                text = out.decode(errors="replace").strip()
                job.status = "done" if proc.returncode == 0 else "failed"
                job.message = text.splitlines()[-1][:300] if text else f"exit {proc.returncode}"
            except Exception as exc:  # the child could not start: say so on the page
                log.warning("console report job %s failed to start: %s", job.id, exc)
                job.status, job.message = "failed", f"{type(exc).__name__}: {exc}"
            job.seconds = round(time.monotonic() - t0, 2)
