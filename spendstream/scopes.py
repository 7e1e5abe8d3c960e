"""Budget scopes: which (kind, value) scopes a cost counts toward, and what a scope says about its owner.

One home for the fan-out the stream books and the enforcement check looks up (the same seven scopes, or a check
would consult budgets the stream never books), and for "the team / use case of a scope" (auth, ledger rows,
digests).
"""

from __future__ import annotations

from typing import get_args

from schemas.models import ScopeKind

__all__ = ["SCOPE_KINDS", "scope_values", "scope_team", "scope_use_case", "split_scope"]

SCOPE_KINDS: tuple[str, ...] = get_args(ScopeKind)


def scope_values(team: str, cost_center: str, use_case: str, environment: str, provider: str,
                 model: str) -> tuple[tuple[str, str], ...]:
    """The (kind, value) budget scopes a cost with these owner tags counts toward, in SCOPE_KINDS order."""
    return (
        ("org", "all"),
        ("cost_center", cost_center),
        ("team", team),
        ("use_case", use_case),
        ("team_use_case", f"{team}/{use_case}"),
        ("model", f"{provider}/{model}"),
        ("environment", environment),
    )


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
