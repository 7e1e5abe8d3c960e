"""Budget scopes: which (kind, value) scopes a cost counts toward, and what a scope says about its owner.

One home for the fan-out the stream books and the enforcement check looks up (the same scopes, or a check
would consult budgets the stream never books), and for "the team / use case of a scope" (auth, ledger rows,
digests).

Seven owner scopes come from the required tags and are always booked. Four optional scopes come from optional
tags and are booked only when the event carries them (an event without them pays one truthiness test):
`project`, `customer`, `user` (the hashed `user_hash`) and `api_key` (the enforcement key id that reserved
the call, carried in the event's `attributes["api_key_id"]`). Their cardinality is bounded per kind by a
`CardinalityCap`: a value beyond the cap is booked to `<kind>:overflow` (never dropped, every other scope still
gets it) and counted.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, get_args

from schemas.models import ScopeKind

__all__ = ["SCOPE_KINDS", "OPTIONAL_KINDS", "OVERFLOW", "API_KEY_ATTRIBUTE", "scope_values", "optional_scopes",
           "event_optional_scopes", "CardinalityCap", "scope_team", "scope_use_case", "split_scope"]

SCOPE_KINDS: tuple[str, ...] = get_args(ScopeKind)
OPTIONAL_KINDS: tuple[str, ...] = ("project", "customer", "user", "api_key")
OVERFLOW = "overflow"
API_KEY_ATTRIBUTE = "api_key_id"

Scope = tuple[str, str]


def scope_values(team: str, cost_center: str, use_case: str, environment: str, provider: str,
                 model: str) -> tuple[Scope, ...]:
    """The seven owner scopes a cost with these owner tags counts toward, in SCOPE_KINDS order."""
    return (
        ("org", "all"),
        ("cost_center", cost_center),
        ("team", team),
        ("use_case", use_case),
        ("team_use_case", f"{team}/{use_case}"),
        ("model", f"{provider}/{model}"),
        ("environment", environment),
    )


def optional_scopes(project: str | None, customer: str | None, user: str | None,
                    api_key: str | None) -> tuple[Scope, ...]:
    """The optional scopes of a cost: one per non-empty tag, in OPTIONAL_KINDS order; () when none."""
    if not (project or customer or user or api_key):
        return ()
    return tuple((k, v) for k, v in zip(OPTIONAL_KINDS, (project, customer, user, api_key)) if v)


class CardinalityCap:
    """At most `caps[kind]` distinct values per optional scope kind are tracked; later values map to OVERFLOW.

    Pure state (no I/O, no clock): first come, first tracked, per process, plus every value `pin`ned (the values
    budgets name, so a budgeted scope is always booked exactly whatever the order of arrival). A kind absent
    from `caps` is unbounded. `overflowed` counts events mapped to OVERFLOW per kind (a worker metric).
    """

    def __init__(self, caps: Mapping[str, int] | None = None) -> None:
        self.caps = dict(caps or {})
        self._seen: dict[str, set[str]] = {k: set() for k in OPTIONAL_KINDS}
        self._pinned: set[Scope] = set()
        self.overflowed: dict[str, int] = {}

    def pin(self, scopes: Iterable[Scope]) -> None:
        """Always track these (kind, value) scopes (replaces the previous pins)."""
        self._pinned = set(scopes)

    def admit(self, kind: str, value: str) -> str:
        """`value`, or OVERFLOW when `kind` is at its cap and `value` is new and not pinned."""
        seen = self._seen[kind]
        if value in seen:
            return value
        cap = self.caps.get(kind)
        if cap is None or len(seen) < cap or (kind, value) in self._pinned:
            seen.add(value)
            return value
        self.overflowed[kind] = self.overflowed.get(kind, 0) + 1
        return OVERFLOW

    def drain(self) -> dict[str, int]:
        """Overflow counts since the last drain."""
        out, self.overflowed = self.overflowed, {}
        return out


def event_optional_scopes(event: Mapping[str, Any], cap: CardinalityCap | None = None,
                          groups: Any = None) -> tuple[Scope, ...]:
    """The optional scopes a decoded usage event is booked to, capped by `cap`, plus the shared budget groups
    (`group:<budget id>`, spendstream.groups.GroupIndex) its members belong to. () fast when it carries none."""
    g = event.get
    project, customer, user, attrs = g("project"), g("customer"), g("user_hash"), g("attributes")
    key = attrs.get(API_KEY_ATTRIBUTE) if attrs else None
    if not (project or customer or user or key):
        return ()  # the common case, inlined: no call, no tuple built
    found = optional_scopes(project, customer, user, key)
    if groups is not None:
        found += groups.groups_of(found)  # by the member's real value: a group member is never `overflow`
    if cap is None:
        return found
    return tuple((k, cap.admit(k, v)) if k in cap.caps else (k, v) for k, v in found)


def scope_team(kind: str, value: str) -> str | None:
    """The one team a scope belongs to (team, team_use_case), else None (org-wide or cross-team data)."""
    if kind == "team":
        return value
    if kind == "team_use_case":
        return value.partition("/")[0]
    return None


def scope_use_case(kind: str, value: str) -> str | None:
    """The use case a scope narrows to (use_case, team_use_case), else None."""
    if kind == "use_case":
        return value
    if kind == "team_use_case":
        return value.partition("/")[2]
    return None


def split_scope(text: str) -> tuple[str, str]:
    """'team:payments' -> ('team', 'payments'); no validation (see enforcement.queries.parse_scope)."""
    kind, _, value = text.partition(":")
    return kind, value
