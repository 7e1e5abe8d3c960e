"""API keys: created once (`spendstream keys create`), stored only as a SHA-256 hash, each with a scope.

Scopes:
  check  a service: POST /v1/check and reservation release, for the teams it is bound to ('*' = any team)
  read   a team lead: spend, budgets and decisions of their own team(s) only
  ingest a producer: POST /v1/events and the OTLP endpoint, for the teams it is bound to ('*' = any team); an
         event naming no team is stamped with the key's team when the key has exactly one, and an event naming a
         team outside the key's is rejected
  admin  everything, including budgets CRUD
Any valid key may call /healthz, /readyz and /metrics.

Keys are 256 random bits, so a fast hash is enough (nothing to brute-force; a slow KDF would only add latency to
every call). Verified keys are cached in-process for `cache_s`: a revoked key keeps working on a running API for
at most that long. While Redis is unreachable a key verified earlier stays accepted (so fail-open / fail-closed
budgets can still answer); an unverified key then raises StoreUnavailable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Callable, Literal

from enforcement.errors import Forbidden, Unauthorized
from sinks.redis.client import RedisClient
from sinks.redis.keys import Keys
from sinks.redis.scripts import ScriptRunner
from spendstream.errors import ConfigError, StoreUnavailable
from spendstream.ttl_cache import TtlCache

__all__ = ["ApiKeys", "Principal", "KeyScope", "KEY_SCOPES"]

KeyScope = Literal["check", "read", "ingest", "admin"]
KEY_SCOPES = ("check", "read", "ingest", "admin")
_TEAM_SCOPES = ("check", "read", "ingest")
ANY_TEAM = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id (not secret), name, scope and teams."""

    key_id: str
    name: str
    scope: str
    teams: tuple[str, ...] = ()

    def _has_team(self, team: str) -> bool:
        return team in self.teams or ANY_TEAM in self.teams

    def require_check(self, team: str) -> None:
        """Raises Forbidden unless this key may spend for `team`."""
        if self.scope == "admin":
            return
        if self.scope != "check":
            raise Forbidden(f"key {self.name!r} has scope {self.scope!r}; checks need scope 'check'")
        if not self._has_team(team):
            raise Forbidden(f"key {self.name!r} may not spend for team {team!r}")

    def require_read(self, team: str | None) -> None:
        """Raises Forbidden unless this key may read `team`'s data (team None: data of no single team)."""
        if self.scope == "admin":
            return
        if self.scope != "read":
            raise Forbidden(f"key {self.name!r} has scope {self.scope!r}; reads need scope 'read'")
        if team is None or not self._has_team(team):
            raise Forbidden(f"key {self.name!r} may only read team(s) {', '.join(self.teams)}")

    def require_ingest(self) -> None:
        """Raises Forbidden unless this key may send usage events."""
        if self.scope not in ("ingest", "admin"):
            raise Forbidden(f"key {self.name!r} has scope {self.scope!r}; sending events needs scope 'ingest'")

    def ingest_team(self, team: str | None) -> str | None:
        """The team an event this key sends is booked to: its own `team`, or the key's only team when it names
        none. Raises Forbidden when it names a team outside the key's, or none while the key has several."""
        if self.scope == "admin" or ANY_TEAM in self.teams:
            return team
        if not team:
            if len(self.teams) == 1:
                return self.teams[0]
            raise Forbidden(f"the event names no team and key {self.name!r} sends for several "
                            f"({', '.join(self.teams)}): name one")
        if team not in self.teams:
            raise Forbidden(f"key {self.name!r} may not send events for team {team!r}")
        return team

    def require_admin(self) -> None:
        if self.scope != "admin":
            raise Forbidden(f"key {self.name!r} has scope {self.scope!r}; this needs scope 'admin'")

    def can_read(self, team: str | None) -> bool:
        try:
            self.require_read(team)
        except Forbidden:
            return False
        return True


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The key store (Redis hash sha256(key) -> principal JSON) and the authenticator."""

    def __init__(self, redis_client: RedisClient, prefix: str = "ss", *, bootstrap_admin_key: str | None = None,
                 cache_s: float = 5.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.runner = ScriptRunner(redis_client)
        self.key = Keys(prefix).api_keys()
        self._bootstrap = bootstrap_admin_key
        self._cache: TtlCache[str, Principal] = TtlCache(cache_s, monotonic)

    async def _one(self, *command):
        return (await self.runner.run([(None, (), command)]))[0]

    async def _all(self) -> dict[bytes | str, bytes | str]:
        raw = await self._one("HGETALL", self.key)
        return raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2]))

    async def create(self, name: str, scope: str, teams: list[str] | tuple[str, ...] = (), now_ms: int = 0) -> tuple[str, Principal]:
        """A new key: returns (the key, shown once, and its principal). Raises ConfigError for a bad scope or a
        check / read / ingest key without teams."""
        if scope not in KEY_SCOPES:
            raise ConfigError(f"scope must be one of {', '.join(KEY_SCOPES)}, got {scope!r}")
        if scope in _TEAM_SCOPES and not teams:
            raise ConfigError(f"a {scope!r} key needs at least one --team ('*' for any team)")
        key_id = secrets.token_hex(4)
        key = f"ss_{key_id}_{secrets.token_urlsafe(32)}"
        p = Principal(key_id, name, scope, tuple(teams) if scope != "admin" else ())
        record = {**asdict(p), "teams": list(p.teams), "created_ms": now_ms}
        await self._one("HSET", self.key, _digest(key), json.dumps(record))
        return key, p

    async def list(self) -> list[Principal]:
        raw = await self._all()
        return sorted((_principal(v) for v in raw.values()), key=lambda p: p.name)

    async def revoke(self, key_id: str) -> bool:
        """Delete the key with this id. True when one was deleted."""
        raw = await self._all()
        doomed = [h for h, v in raw.items() if _principal(v).key_id == key_id]
        if doomed:
            await self._one("HDEL", self.key, *doomed)
        self._cache.clear()
        return bool(doomed)

    async def authenticate(self, key: str | None) -> Principal:
        """The principal of `key`. Raises Unauthorized for a missing / unknown key, StoreUnavailable when Redis
        cannot verify a key not seen before."""
        if not key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        if self._bootstrap and hmac.compare_digest(key.encode(), self._bootstrap.encode()):
            return Principal("bootstrap", "bootstrap-admin", "admin")
        digest = _digest(key)
        hit = self._cache.get(digest)
        if hit is not None:
            return hit
        try:
            raw = await self._one("HGET", self.key, digest)
        except StoreUnavailable as exc:
            verified = self._cache.stale(digest)
            if verified is not None:  # verified before; Redis is down, keep answering with the fail modes
                return verified
            raise StoreUnavailable(f"spend store unavailable: cannot verify the API key ({exc})") from exc
        if raw is None:
            self._cache.discard(digest)
            raise Unauthorized("unknown or revoked API key")
        if len(self._cache) > 10_000:
            self._cache.clear()
        return self._cache.put(digest, _principal(raw))


def _principal(raw: bytes | str) -> Principal:
    d = json.loads(raw)
    return Principal(d["key_id"], d["name"], d["scope"], tuple(d.get("teams", ())))
