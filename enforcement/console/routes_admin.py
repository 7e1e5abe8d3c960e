"""Console pages that change things: budgets (admin keys: list, create, edit, delete, with the budget history of
each) and report jobs (a read key builds its own team's weekly digest; admin also the monthly review and the
FOCUS export). Every POST carries the CSRF token; the budget rules are the API's (enforcement.budget_admin)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from enforcement.budget_admin import BudgetAdmin
from enforcement.checker import Checker
from enforcement.console.budget_form import budget_from_form, form_values
from enforcement.console.jobs import REVIEW_MODELS, ReportJobs
from enforcement.console.pages import PREFIX, Pages
from enforcement.console.session import security_headers
from enforcement.console.views import ConsoleData, Reads
from enforcement.errors import Conflict, NotFound
from sinks.clickhouse.budget_history import snapshot_rows

__all__ = ["admin_pages", "changes"]

def changes(before: str, after: str) -> list[str]:
    """'field: old → new' for each field that differs between two budget JSON snapshots ('' = none)."""
    b, a = (json.loads(before) if before else {}), (json.loads(after) if after else {})
    return [f"{k}: {json.dumps(b.get(k))} → {json.dumps(a.get(k))}" for k in sorted(set(b) | set(a))
            if b.get(k) != a.get(k)]


def admin_pages(r: APIRouter, pages: Pages, checker: Checker, jobs: ReportJobs, data: ConsoleData) -> None:
    admin = BudgetAdmin(checker)

    only_admin = "Budgets are edited with an admin key."

    async def _history(budget_id: str) -> tuple[list[dict[str, Any]], str | None]:
        reads = Reads()
        rows = await data.read_clickhouse(reads, snapshot_rows, budget_id, default=[])
        for row in rows:
            row["changes"] = changes(row["before"], row["after"])
        return sorted(rows, key=lambda x: x["snapshot_at"], reverse=True), (reads.notes[0] if reads.notes else None)

    async def _form(request, who, budget_id: str | None, values, errors, status=200) -> Response:
        history, note = await _history(budget_id) if budget_id else ([], None)
        return pages.render(request, "budget_edit.html", {"budget_id": budget_id, "f": values, "errors": errors,
                                                          "history": history, "history_note": note}, status, who)

    @r.get("/budgets")
    async def budgets(request: Request) -> Response:
        who, refused = await pages.signed_in(request, only_admin)
        if refused:
            return refused
        items = sorted(await checker.store.budgets(), key=lambda b: b.id)
        return pages.render(request, "budgets.html", {"budgets": items}, who=who)

    @r.get("/budgets/new")
    async def new_budget(request: Request) -> Response:
        who, refused = await pages.signed_in(request, only_admin)
        return refused or await _form(request, who, None, form_values(None), {})

    @r.post("/budgets/new")
    async def create_budget(request: Request) -> Response:
        who, form, refused = await pages.posted(request, only_admin)
        if refused:
            return refused
        b, errors = budget_from_form(form)
        if b is not None:
            try:
                await admin.create(b, who)
                return pages.redirect(f"{PREFIX}/budgets/{b.id}")
            except Conflict as exc:
                errors = {"id": str(exc)}
        return await _form(request, who, None, form, errors, 422)

    @r.get("/budgets/{budget_id}")
    async def edit_budget(request: Request, budget_id: str) -> Response:
        who, refused = await pages.signed_in(request, only_admin)
        if refused:
            return refused
        b = await admin.existing(budget_id)
        if b is None:
            return pages.refuse(request, who, 404, f"No budget {budget_id!r}.")
        return await _form(request, who, budget_id, form_values(b), {})

    @r.post("/budgets/{budget_id}")
    async def update_budget(request: Request, budget_id: str) -> Response:
        who, form, refused = await pages.posted(request, only_admin)
        if refused:
            return refused
        base = await admin.existing(budget_id)
        form["id"] = budget_id  # the path names the budget; the id is not editable
        b, errors = budget_from_form(form, base)
        if b is None:
            return await _form(request, who, budget_id, form, errors, 422)
        await admin.put(b, who)
        return pages.redirect(f"{PREFIX}/budgets/{budget_id}")

    @r.post("/budgets/{budget_id}/delete")
    async def delete_budget(request: Request, budget_id: str) -> Response:
        who, _, refused = await pages.posted(request, only_admin)
        if refused:
            return refused
        try:
            await admin.delete(budget_id, who)
        except NotFound:
            return pages.refuse(request, who, 404, f"No budget {budget_id!r}.")
        return pages.redirect(f"{PREFIX}/budgets")

    def _reports(request, who, error: str | None = None, status: int = 200) -> Response:
        return pages.render(request, "reports.html", {"jobs": jobs.visible(who.key_id, who.scope == "admin"),
                                                      "models": REVIEW_MODELS, "error": error}, status, who)

    @r.get("/reports")
    async def reports(request: Request) -> Response:
        who, refused = await pages.signed_in(request)
        return refused or _reports(request, who)

    @r.get("/reports/jobs")
    async def report_jobs(request: Request) -> Response:
        who, refused = await pages.signed_in(request)
        if refused:
            return refused
        return pages.render(request, "_jobs.html", {"jobs": jobs.visible(who.key_id, who.scope == "admin")},
                            who=who)

    @r.post("/reports")
    async def start_report(request: Request) -> Response:
        who, form, refused = await pages.posted(request)
        if refused:
            return refused
        kind = form.get("kind", "")
        if who.scope != "admin" and kind != "weekly":
            return _reports(request, who, "The monthly review and the FOCUS export need an admin key.", 403)
        teams = () if who.scope == "admin" else tuple(t for t in who.teams if t != "*")
        try:
            jobs.start(kind, form.get("period", "").strip(), who.key_id, model=form.get("model", "real-cost"),
                       teams=teams)
        except ValueError as exc:
            return _reports(request, who, str(exc), 422)
        return pages.redirect(f"{PREFIX}/reports")

    @r.get("/reports/{job_id}/{name}")
    async def download(request: Request, job_id: str, name: str) -> Response:
        who, refused = await pages.signed_in(request)
        if refused:
            return refused
        job = jobs.jobs.get(job_id)
        if job is None or (who.scope != "admin" and job.owner != who.key_id) or name not in job.files:
            return pages.refuse(request, who, 404, "No such report file.")
        return FileResponse(job.dir / name, filename=name, headers=security_headers(False))


