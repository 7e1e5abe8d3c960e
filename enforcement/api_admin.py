"""Admin and read endpoints: budgets CRUD, live spend, active decisions. Errors are raised typed and mapped to
HTTP by enforcement/api.py."""


from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from enforcement.auth import Principal
from enforcement.checker import STORE_UNAVAILABLE, Checker
from enforcement.budget_admin import BudgetAdmin
from enforcement.errors import InvalidRequest, NotFound
from enforcement.queries import ActiveDecision, Queries, SpendReport, parse_scope
from spendstream.scopes import SCOPE_KINDS, scope_team, split_scope
from schemas.models import Budget

__all__ = ["admin_router", "ErrorBody", "error_responses", "MemberLabels", "decision_team"]

SCOPE_PATTERN = f"^({'|'.join(SCOPE_KINDS)}):."  # what parse_scope accepts: a known kind, a non-empty value


class ErrorBody(BaseModel):
    """Every error answer: `error`, plus `detail` (what is wrong, one line per field) for a bad body or query."""

    error: str
    detail: list[str] | None = None


_MEANING = {401: "no or unknown key", 403: "key outside its scope or teams", 404: "no such budget",
            409: "the budget exists", 413: "request body too large", 422: "bad body or query",
            503: STORE_UNAVAILABLE}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error statuses a route can answer, all with the ErrorBody shape."""
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in codes}


class MemberLabels(BaseModel):
    labels: dict[str, Annotated[str, Field(max_length=200)]] = Field(default_factory=dict, max_length=50)


def _team_of(b: Budget) -> str | None:
    return scope_team(b.scope.kind, b.scope.value)


def admin_router(checker: Checker, queries: Queries, principal: Callable[..., Any]) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["budgets and spend"], responses=error_responses(401, 403, 422, 503))
    Caller = Annotated[Principal, Depends(principal)]
    store = checker.store

    admin = BudgetAdmin(checker)
    _existing = admin.existing

    @r.get("/budgets", response_model=list[Budget])
    async def list_budgets(who: Caller) -> list[Budget]:
        """Budgets the key may read: all for admin, its own team's for a read key."""
        if who.scope == "admin":
            return await store.budgets()
        who.require_read(who.teams[0] if who.teams else None)
        return [b for b in await store.budgets() if who.can_read(_team_of(b))]

    @r.get("/budgets/{budget_id}", response_model=Budget, responses=error_responses(404))
    async def get_budget(budget_id: str, who: Caller) -> Budget:
        b = await _existing(budget_id)
        if b is None:
            who.require_admin()
            raise NotFound(f"no budget {budget_id!r}")
        who.require_read(_team_of(b))
        return b

    @r.post("/budgets", response_model=Budget, status_code=201, responses=error_responses(409, 413))
    async def create_budget(budget: Budget, who: Caller) -> Budget:
        """Create a budget; 409 when the id exists (use PUT to replace)."""
        who.require_admin()
        return await admin.create(budget, who)

    @r.put("/budgets/{budget_id}", response_model=Budget, responses=error_responses(413))
    async def put_budget(budget_id: str, budget: Budget, who: Caller) -> Budget:
        """Create or replace the budget `budget_id` (the body's id must match)."""
        who.require_admin()
        if budget.id != budget_id:
            raise InvalidRequest(f"body id {budget.id!r} differs from path id {budget_id!r}")
        await admin.put(budget, who)
        return budget

    @r.delete("/budgets/{budget_id}", responses=error_responses(404))
    async def delete_budget(budget_id: str, who: Caller) -> dict:
        who.require_admin()
        await admin.delete(budget_id, who)
        return {"deleted": budget_id}

    @r.get("/spend", response_model=SpendReport)
    async def spend(who: Caller, scope: Annotated[str, Query(min_length=3, max_length=300, pattern=SCOPE_PATTERN,
                                                              examples=["team:payments"])],
                    period: Literal["hour", "day", "week", "month", "quarter"] = "month",
                    length: Annotated[Literal["24h", "7d", "30d"] | None, Query(
                        description="a rolling window instead of the period")] = None) -> SpendReport:
        """Live spend of one scope (kind:value, e.g. team:payments, user:u-9f2, api_key:k1) in the current period
        window (quarters follow the fiscal year), or in its rolling window of `length`."""
        try:
            s = parse_scope(scope)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        who.require_read(scope_team(s.kind, s.value))
        return await queries.spend(s, period, length)

    @r.put("/members/{kind}/{value}", response_model=MemberLabels)
    async def put_member(kind: Literal["api_key", "customer", "project"], value: str, body: MemberLabels,
                         who: Caller) -> MemberLabels:
        """Label a budget-group member (an API key by its id, a customer, a project): group budgets select
        members by these labels (e.g. {"team": "payments", "tier": "free"})."""
        who.require_admin()
        await store.put_member(kind, value, body.labels)
        checker.invalidate_budgets()
        return body

    @r.get("/members/{kind}/{value}", response_model=MemberLabels)
    async def get_member(kind: Literal["api_key", "customer", "project"], value: str, who: Caller) -> MemberLabels:
        who.require_admin()
        (labels,) = await store.member_labels([(kind, value)])
        return MemberLabels(labels=labels)

    @r.get("/decisions", response_model=list[ActiveDecision])
    async def decisions(who: Caller) -> list[ActiveDecision]:
        """Active throttle / deny / downgrade decisions the stream took; a read key sees its own team's."""
        if who.scope == "admin":
            return await queries.decisions()
        who.require_read(who.teams[0] if who.teams else None)
        return [d for d in await queries.decisions() if who.can_read(decision_team(d))]

    return r


def decision_team(d: ActiveDecision) -> str | None:
    if not d.scope or ":" not in d.scope:
        return None
    return scope_team(*split_scope(d.scope))
