"""Pydantic models mirroring the Avro contract and the other records the system exchanges.

The worker's hot path works on the plain dicts fastavro returns (validating 25k models/s would cost a core);
these models serve the edges: the SDK, the API, the CLI and the docs.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "REQUIRED_TAGS", "OPTIONAL_TAGS", "ENVIRONMENTS", "WORKLOAD_TYPES", "SOURCES", "STATUSES",
    "UsageEvent", "Budget", "BudgetScope", "tag_problems",
]

REQUIRED_TAGS = ("team", "cost_center", "use_case", "environment", "workload_type")
OPTIONAL_TAGS = ("project", "customer", "user_hash", "activity_type", "activity_id")
ENVIRONMENTS = ("production", "staging", "development", "research")
WORKLOAD_TYPES = ("inference", "training", "notebook", "evaluation", "embedding", "batch")
SOURCES = ("sdk", "litellm", "gateway", "import")
STATUSES = ("success", "error", "cancelled")

Count = Field(default=0, ge=0)


class UsageEvent(BaseModel):
    """One usage event, as in schemas/usage_event.avsc. Tags are optional here on purpose: a missing required tag
    is booked to `unallocated`, never rejected."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=200)
    event_time: int = Field(description="UTC epoch milliseconds", ge=0)
    source: Literal["sdk", "litellm", "gateway", "import"] = "sdk"
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    operation: str = "chat"
    input_tokens: int = Count
    output_tokens: int = Count
    cached_input_tokens: int = Count
    cache_write_tokens: int = Count
    reasoning_tokens: int = Count
    request_count: int = Field(default=1, ge=0)
    gpu_seconds: float = Field(default=0.0, ge=0)
    accelerator_type: str | None = None
    egress_bytes: int = Count
    status: Literal["success", "error", "cancelled"] = "success"
    service_tier: str | None = None
    team: str | None = None
    cost_center: str | None = None
    use_case: str | None = None
    environment: str | None = None
    workload_type: str | None = None
    project: str | None = None
    customer: str | None = None
    user_hash: str | None = None
    activity_type: str | None = None
    activity_id: str | None = None
    reservation_id: str | None = None
    request_id: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)

    def missing_tags(self) -> list[str]:
        return [t for t in REQUIRED_TAGS if not getattr(self, t)]


_ENV_SET = frozenset(ENVIRONMENTS)
_WORKLOAD_SET = frozenset(WORKLOAD_TYPES)


def tag_problems(event: Mapping[str, Any]) -> tuple[str, ...]:
    """Why an event would be booked to `unallocated`: missing required tags, unknown environment / workload_type.

    Empty when the tags are complete. Cheap (the SDK calls it on every record()); never raises.
    """
    problems = tuple(f"missing {t}" for t in REQUIRED_TAGS if not event.get(t))
    env, wl = event.get("environment"), event.get("workload_type")
    if env and env not in _ENV_SET:
        problems += (f"environment {env!r} not in {'|'.join(ENVIRONMENTS)}",)
    if wl and wl not in _WORKLOAD_SET:
        problems += (f"workload_type {wl!r} not in {'|'.join(WORKLOAD_TYPES)}",)
    return problems


ScopeKind = Literal["org", "cost_center", "team", "use_case", "team_use_case", "model", "environment",
                    "project", "customer", "user", "api_key"]


class BudgetScope(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ScopeKind
    value: str = Field(default="all", min_length=1, description="team name, 'team/use_case', 'provider/model', ...")


class Budget(BaseModel):
    """A spend limit for one scope and period. Money is a decimal USD string at this edge."""

    # published in the OpenAPI: a downgrade budget names the model to downgrade to (the API refuses it otherwise)
    model_config = ConfigDict(frozen=True, json_schema_extra={
        "if": {"properties": {"action": {"const": "downgrade"}}, "required": ["action"]},
        "then": {"required": ["downgrade_model"], "properties": {"downgrade_model": {"type": "string", "minLength": 1}}},
    })

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    scope: BudgetScope
    period: Literal["day", "week", "month", "quarter"] = Field(
        default="month", description="calendar window (UTC); quarter follows the org's fiscal year start month")
    window: Literal["calendar", "rolling"] = Field(
        default="calendar", description="rolling: the spend of the last `length` at any moment; period is ignored")
    length: Literal["24h", "7d", "30d"] | None = Field(default=None, description="rolling window length")
    selector: dict[str, str] | None = Field(
        default=None, description="a budget group: every member (scope.value '*') whose labels match")
    group: Literal["shared", "each"] = Field(
        default="shared", description="with selector: one counter for all members, or a default budget for each")
    limit_usd: str = Field(pattern=r"^\d{1,9}(\.\d{1,9})?$",
                           description="USD, up to 9 decimals and below 1e9 (nano-USD fit a signed 64-bit integer)")
    carry_over: bool = Field(default=False, description="unused budget of the previous period adds to this one")
    carry_over_cap_pct: int = Field(default=100, ge=0, le=100, description="at most this % of the limit carries")
    thresholds: tuple[int, ...] = (50, 80, 100)
    mode: Literal["showback", "enforce"] = "showback"
    action: Literal["warn", "throttle", "deny", "downgrade"] = "deny"
    downgrade_model: str | None = None
    throttle_rps: float = Field(default=1.0, gt=0)
    requests_per_minute: int | None = Field(default=None, ge=1, description="enforce: throttle above this rate")
    tokens_per_minute: int | None = Field(default=None, ge=1, description="enforce: throttle above this rate "
                                          "(the check's estimated input + output tokens)")
    fail_mode: Literal["open", "closed"] | None = Field(
        default=None, description="When the spend store is unreachable; default open for showback, closed for enforce"
    )

    @model_validator(mode="after")
    def _window_shape(self) -> "Budget":
        if self.window == "rolling" and self.length is None:
            raise ValueError("a rolling budget needs length: 24h, 7d or 30d")
        if self.window == "calendar" and self.length is not None:
            raise ValueError("length applies to window: rolling only (a calendar budget uses period)")
        if (self.requests_per_minute or self.tokens_per_minute) and self.mode != "enforce":
            raise ValueError("requests_per_minute / tokens_per_minute need mode: enforce")
        if self.selector is not None and (self.scope.kind not in ("api_key", "customer", "project")
                                          or self.scope.value != "*"):
            raise ValueError("a group budget (selector) needs scope {kind: api_key | customer | project, value: '*'}")
        if self.selector is not None and (self.carry_over or self.requests_per_minute or self.tokens_per_minute):
            raise ValueError("a group budget takes no carry_over or per-minute limits (give them to members)")
        if self.selector is None and self.scope.value == "*":
            raise ValueError("scope value '*' needs a selector (a budget group)")
        if self.carry_over and self.window == "rolling":
            raise ValueError("carry_over needs a calendar period (a rolling window has no previous period)")
        return self

    @property
    def window_name(self) -> str:
        """What the budget's window is called in answers: the period, or `rolling 24h`."""
        return f"rolling {self.length}" if self.window == "rolling" else self.period

    @cached_property
    def limit_nanos(self) -> int:
        """limit_usd in nano-USD, parsed once per budget (the pattern allows at most 9 decimals: exact)."""
        whole, _, frac = self.limit_usd.partition(".")
        return int(whole) * 1_000_000_000 + int(frac.ljust(9, "0"))

    @property
    def effective_fail_mode(self) -> str:
        return self.fail_mode or ("closed" if self.mode == "enforce" else "open")

