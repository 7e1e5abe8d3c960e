"""Users of the dev ClickHouse server: a writer (``default`` by default) and read-only analysts.

Sources, merged in this order (later wins per name): the users file (JSON or YAML), the
``DEVSERVERS_CH_USERS`` environment variable (``name:password:rw|ro`` entries separated by commas), and
repeated ``--user name:password:rw|ro`` flags. With no source at all: one writer ``default`` without a
password. A users file looks like::

    users:
      default: {password: "", readonly: false}
      analyst: {password: "s3cret", readonly: true}
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "DEVSERVERS_CH_USERS"


@dataclass(frozen=True)
class User:
    name: str
    password: str
    readonly: bool


def parse_user_spec(spec: str) -> User:
    """``name:password:rw|ro`` (the password may contain ':'; ``name:password`` means rw)."""
    name, sep, rest = spec.partition(":")
    if not name or not sep:
        raise ValueError(f"bad user spec {spec!r}: expected NAME:PASSWORD[:rw|ro]")
    password, mode = rest, "rw"
    head, sep2, tail = rest.rpartition(":")
    if sep2 and tail in ("rw", "ro"):
        password, mode = head, tail
    return User(name, password, mode == "ro")


def load_users_file(path: str | os.PathLike) -> list[User]:
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        doc = yaml.safe_load(text) or {}
    else:
        doc = json.loads(text)
    entries = doc.get("users", doc) if isinstance(doc, dict) else doc
    users: list[User] = []
    if isinstance(entries, dict):
        for name, spec in entries.items():
            spec = spec or {}
            users.append(User(str(name), str(spec.get("password", "") or ""), _ro(spec)))
    elif isinstance(entries, list):
        for spec in entries:
            users.append(User(str(spec["name"]), str(spec.get("password", "") or ""), _ro(spec)))
    else:
        raise ValueError(f"{path}: expected a mapping or list of users")
    return users


def _ro(spec: dict) -> bool:
    if "readonly" in spec:
        return bool(spec["readonly"])
    return str(spec.get("mode", spec.get("access", "rw"))).lower() in ("ro", "readonly", "read-only")


class Users:
    def __init__(self, users: list[User]):
        self.by_name = {u.name: u for u in users}

    @classmethod
    def from_sources(cls, users_file: str | None, specs: list[str] | None, env: dict | None = None) -> "Users":
        env = os.environ if env is None else env
        merged: dict[str, User] = {}
        if users_file:
            merged.update({u.name: u for u in load_users_file(users_file)})
        for spec in filter(None, (s.strip() for s in env.get(ENV_VAR, "").split(","))):
            u = parse_user_spec(spec)
            merged[u.name] = u
        for spec in specs or []:
            u = parse_user_spec(spec)
            merged[u.name] = u
        if not merged:
            merged["default"] = User("default", "", False)
        return cls(list(merged.values()))

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.by_name.get(name)
        if user is None:
            hmac.compare_digest(password.encode(), b"x")  # same work for unknown users
            return None
        if not hmac.compare_digest(password.encode(), user.password.encode()):
            return None
        return user
