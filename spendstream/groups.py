"""Budget groups: one budget over every api key, customer or project whose labels match a selector.

A group budget has `scope: {kind: api_key, value: "*"}` and `selector: {team: payments, tier: free}`:
  group: shared  one counter for all members together: the stream books a member's spend to the scope
                 `group:<budget id>` too, and a member's check reads it;
  group: each    the default budget of every member that has no budget of its own (same scope kind and window):
                 the member's own scope counter is held to the group's limit.
Members' labels are set through the admin API (`PUT /v1/members/{kind}/{value}`). Pure: callers pass labels in.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

from schemas.models import Budget

__all__ = ["GROUP_KIND", "GROUP_KINDS", "matches", "budget_scope", "GroupIndex", "group_budgets_for"]

GROUP_KIND = "group"
GROUP_KINDS = ("api_key", "customer", "project")
Labels = Mapping[str, str]
Scope = tuple[str, str]


def matches(selector: Labels, labels: Labels) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def budget_scope(b: Budget) -> Scope:
    """The counter scope a budget reads: `group:<id>` for a shared group, else its own scope."""
    if b.selector is not None and b.group == "shared":
        return GROUP_KIND, b.id
    return b.scope.kind, b.scope.value


def group_budgets_for(budgets: Sequence[Budget], scopes: Iterable[Scope],
                      labels_of: Callable[[Scope], Labels]) -> list[tuple[Budget, Scope]]:
    """The group budgets a call with these scopes meets, each with the scope whose counter it reads: the group's
    (shared), or the member's own (each: only when the member has no budget of its own of that kind and window)."""
    groups = [b for b in budgets if b.selector is not None]
    if not groups:
        return []
    own = {(b.scope.kind, b.scope.value, b.window, b.period, b.length) for b in budgets if b.selector is None}
    out = []
    for scope in scopes:
        if scope[0] not in GROUP_KINDS:
            continue
        labels = labels_of(scope)
        for b in groups:
            if b.scope.kind != scope[0] or not matches(b.selector, labels):
                continue
            if b.group == "shared":
                out.append((b, (GROUP_KIND, b.id)))
            elif (*scope, b.window, b.period, b.length) not in own:
                out.append((b, scope))
    return out


class GroupIndex:
    """The stream's view: which shared groups a member's spend is also booked to. Rebuilt by the budget watcher
    from the budgets and the members' labels; read per event (a dict lookup) by the processor."""

    def __init__(self) -> None:
        self._of: dict[Scope, tuple[Scope, ...]] = {}

    def rebuild(self, budgets: Sequence[Budget], labels: Mapping[Scope, Labels]) -> None:
        shared = [b for b in budgets if b.selector is not None and b.group == "shared"]
        of: dict[Scope, list[Scope]] = {}
        for member, lab in labels.items():
            for b in shared:
                if b.scope.kind == member[0] and matches(b.selector, lab):
                    of.setdefault(member, []).append((GROUP_KIND, b.id))
        self._of = {m: tuple(g) for m, g in of.items()}

    def kinds(self, budgets: Sequence[Budget]) -> set[str]:
        """Scope kinds whose members' labels the index needs."""
        return {b.scope.kind for b in budgets if b.selector is not None and b.group == "shared"}

    def groups_of(self, scopes: Iterable[Scope]) -> tuple[Scope, ...]:
        if not self._of:
            return ()
        return tuple(g for s in scopes for g in self._of.get(s, ()))
