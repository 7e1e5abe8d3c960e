"""The budget form of the console <-> schemas.models.Budget. The form edits the common fields; fields it does not
show (rolling window, selector, rate limits, carry-over) are kept from the budget being edited. Validation is the
API's own (the Budget model plus enforcement.budget_admin.validate_budget), its messages keyed by form field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from enforcement.budget_admin import validate_budget
from enforcement.errors import InvalidRequest
from schemas.models import Budget

__all__ = ["FIELDS", "form_values", "budget_from_form"]

FIELDS = ("id", "scope_kind", "scope_value", "period", "limit_usd", "thresholds", "mode", "action", "downgrade_model")


def form_values(b: Budget | None) -> dict[str, str]:
    """The form's values for budget `b` (defaults for a new one)."""
    if b is None:
        return {"id": "", "scope_kind": "team", "scope_value": "", "period": "month", "limit_usd": "",
                "thresholds": "50, 80, 100", "mode": "showback", "action": "deny", "downgrade_model": ""}
    return {"id": b.id, "scope_kind": b.scope.kind, "scope_value": b.scope.value, "period": b.period,
            "limit_usd": b.limit_usd, "thresholds": ", ".join(str(t) for t in b.thresholds), "mode": b.mode,
            "action": b.action, "downgrade_model": b.downgrade_model or ""}


def _field(loc: tuple) -> str:
    head = str(loc[0]) if loc else ""
    if head == "scope" and len(loc) > 1:
        return f"scope_{loc[1]}"
    return head if head in FIELDS else "form"


def budget_from_form(form: dict[str, str], base: Budget | None = None) -> tuple[Budget | None, dict[str, str]]:
    """(the budget, {}) or (None, {field: message}) for the form's values, over `base` when editing."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = base.model_dump(mode="json") if base is not None else {}
    try:
        thresholds = tuple(int(t) for t in form.get("thresholds", "").replace(",", " ").split())
    except ValueError:
        errors["thresholds"] = "thresholds must be whole percents, e.g. 50, 80, 100"
        thresholds = ()
    data.update({
        "id": form.get("id", "").strip(), "scope": {"kind": form.get("scope_kind", ""),
                                                    "value": form.get("scope_value", "").strip()},
        "period": form.get("period", ""), "limit_usd": form.get("limit_usd", "").strip(), "mode": form.get("mode", ""),
        "action": form.get("action", ""), "downgrade_model": form.get("downgrade_model", "").strip() or None,
    })
    if thresholds:
        data["thresholds"] = thresholds
    if errors:
        return None, errors
    try:
        b = Budget.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            errors.setdefault(_field(tuple(e["loc"])), e["msg"].removeprefix("Value error, "))
        return None, errors
    try:
        validate_budget(b)
    except InvalidRequest as exc:
        return None, {"downgrade_model": str(exc)}
    return b, {}
