"""Budget writes, one home for the API (enforcement/api_admin.py) and the console (enforcement/console/): the same
validation, the same store, every change recorded in the budget history (`budget_snapshots`: who, when, before,
after). Errors are raised typed (Conflict, NotFound, InvalidRequest, StoreUnavailable) and mapped by the caller."""

from __future__ import annotations

from enforcement.auth import Principal
from enforcement.checker import Checker
from enforcement.errors import Conflict, InvalidRequest, NotFound
from schemas.models import Budget
from spendstream.budget_history import BudgetChange

__all__ = ["BudgetAdmin", "validate_budget"]


def validate_budget(b: Budget) -> None:
    """The rules the Budget model cannot state alone. Raises InvalidRequest."""
    if b.action == "downgrade" and not b.downgrade_model:
        raise InvalidRequest("a downgrade budget needs downgrade_model")


class BudgetAdmin:
    """Create / replace / delete budgets as `who` (an admin key: the caller checks the scope)."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self.store = checker.store

    async def existing(self, budget_id: str) -> Budget | None:
        return next((b for b in await self.store.budgets() if b.id == budget_id), None)

    async def _history(self, before: Budget | None, after: Budget | None, who: Principal) -> None:
        """Record the change (after the store took it: the history never shows a change that did not happen; if the
        history write fails the caller gets StoreUnavailable saying so)."""
        log = self.checker.budget_log
        if log is not None and before != after:
            kind = "delete" if after is None else "update" if before is not None else "create"
            await log.record(BudgetChange(kind, self.checker.clock_ms(), who.name, before, after))

    async def create(self, budget: Budget, who: Principal) -> Budget:
        """Raises Conflict when the id exists."""
        validate_budget(budget)
        if await self.existing(budget.id) is not None:
            raise Conflict(f"budget {budget.id!r} exists; PUT /v1/budgets/{budget.id} replaces it")
        await self.store.put_budget(budget)
        self.checker.invalidate_budgets()
        await self._history(None, budget, who)
        return budget

    async def put(self, budget: Budget, who: Principal) -> Budget | None:
        """Create or replace; returns the budget it replaced (None when new)."""
        validate_budget(budget)
        before = await self.existing(budget.id)
        await self.store.put_budget(budget)
        self.checker.invalidate_budgets()
        await self._history(before, budget, who)
        return before

    async def delete(self, budget_id: str, who: Principal) -> Budget | None:
        """Raises NotFound when there is no such budget."""
        before = await self.existing(budget_id)
        if not await self.store.delete_budget(budget_id):
            raise NotFound(f"no budget {budget_id!r}")
        self.checker.invalidate_budgets()
        await self._history(before, None, who)
        return before
