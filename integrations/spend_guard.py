"""Check + reserve before a model call, settle by the usage event, release when the call fails.

    with spend_guard(checker, tags=TAGS, provider="openai", model="gpt-4o", est_input=1200, est_output=300,
                     publisher=publisher) as guard:
        response = client.chat.completions.create(model=guard.model, ...)   # guard.model: swapped on downgrade
        publisher.record(..., reservation_id=guard.reservation_id)          # the worker settles the hold

    async with async_spend_guard(async_checker, ...) as guard: ...          # AsyncHttpChecker: never blocks

Before the call: POST /v1/check with `reserve: true`.
  * deny / throttle -> `BudgetDenied` is raised *before any request leaves*; no usage event is published for the
    call (it never happened); the denial is counted in the publisher's `stats.denied_calls` (the API counts it
    too, in `spendstream_api_checks{decision="deny"}`).
  * downgrade -> `guard.model` is the suggested model.
  * allow / warn -> `guard.reservation_id` names the hold (None when the API held nothing).
  * API unreachable -> the call goes ahead without a hold when `fail_open` (the default), else
    `EnforcementUnavailable` is raised.
After the call: the usage event carries `reservation_id` and the stream worker settles the hold with the actual
cost. When the guarded block raises (the request failed), the hold is released at once; if the release itself
cannot reach the API the hold expires by itself (`hold_ttl_s`, 300 s).

The OpenAI / Anthropic wrappers (`instrument_openai(..., checker=)`) and the LiteLLM hook use these functions.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterator

from integrations.enforcement_check import check_request
from integrations.errors import BudgetDenied, EnforcementUnavailable

__all__ = ["API_KEY_ATTRIBUTE", "Guard", "spend_guard", "async_spend_guard", "open_guard", "aopen_guard", "release", "arelease",
           "count_denied", "GuardedStreamManager"]

log = logging.getLogger(__name__)


API_KEY_ATTRIBUTE = "api_key_id"  # the event attribute the worker books to scope api_key (spendstream.scopes)


@dataclass
class Guard:
    """What the check decided for one call: the model to call and the hold to settle or release."""

    model: str
    reservation_id: str | None = None
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def api_key_id(self) -> str | None:
        """The enforcement API key that made the hold: the usage event carries it (`attributes.api_key_id`) so
        the settled spend books to scope `api_key`."""
        return self.decision.get("api_key_id") if self.reservation_id else None


def count_denied(publisher: Any) -> None:
    """Count a call denied before it left (the publisher's `stats.denied_calls`), never as a usage event."""
    counter = getattr(publisher, "count_denied", None)
    if callable(counter):
        counter()


def _judge(decision: dict[str, Any], model: str, publisher: Any) -> Guard:
    verdict = decision.get("decision")
    if verdict in ("deny", "throttle"):
        count_denied(publisher)
        raise BudgetDenied(str(decision.get("reason") or verdict), decision)
    guard = Guard(model=model, reservation_id=decision.get("reservation_id"), decision=decision)
    if verdict == "downgrade" and decision.get("suggested_model"):
        guard.model = str(decision["suggested_model"])
    return guard


def _unavailable(exc: EnforcementUnavailable, model: str, fail_open: bool) -> Guard:
    if not fail_open:
        raise exc
    log.warning("spendstream: enforcement API unreachable; failing open for %s (%s)", model, exc)
    return Guard(model=model)


def open_guard(checker: Any, *, tags: dict, provider: str, model: str, est_input: int, est_output: int,
               fail_open: bool = True, publisher: Any = None) -> Guard:
    """Check and reserve (sync checker). Raises BudgetDenied, or EnforcementUnavailable when not `fail_open`."""
    try:
        decision = checker.check(check_request(tags, provider, model, est_input, est_output, reserve=True))
    except EnforcementUnavailable as exc:
        return _unavailable(exc, model, fail_open)
    return _judge(decision, model, publisher)


async def aopen_guard(checker: Any, *, tags: dict, provider: str, model: str, est_input: int, est_output: int,
                      fail_open: bool = True, publisher: Any = None) -> Guard:
    """`open_guard` for an async checker (`AsyncHttpChecker`)."""
    try:
        decision = await checker.check(check_request(tags, provider, model, est_input, est_output, reserve=True))
    except EnforcementUnavailable as exc:
        return _unavailable(exc, model, fail_open)
    return _judge(decision, model, publisher)


def release(checker: Any, guard: Guard) -> None:
    """Free the hold of a call that failed; never raises (an unreleased hold expires by itself)."""
    if guard.reservation_id and hasattr(checker, "release"):
        try:
            checker.release(guard.reservation_id)
        except Exception:
            log.warning("spendstream: could not release reservation %s; it expires by itself", guard.reservation_id)
        guard.reservation_id = None


async def arelease(checker: Any, guard: Guard) -> None:
    if guard.reservation_id and hasattr(checker, "release"):
        try:
            await checker.release(guard.reservation_id)
        except Exception:
            log.warning("spendstream: could not release reservation %s; it expires by itself", guard.reservation_id)
        guard.reservation_id = None


@contextlib.contextmanager
def spend_guard(checker: Any, *, tags: dict, provider: str, model: str, est_input: int = 0, est_output: int = 0,
                fail_open: bool = True, publisher: Any = None) -> Iterator[Guard]:
    """Check + reserve before the block; release the hold when the block raises."""
    guard = open_guard(checker, tags=tags, provider=provider, model=model, est_input=est_input,
                       est_output=est_output, fail_open=fail_open, publisher=publisher)
    try:
        yield guard
    except BaseException:
        release(checker, guard)
        raise


@contextlib.asynccontextmanager
async def async_spend_guard(checker: Any, *, tags: dict, provider: str, model: str, est_input: int = 0,
                            est_output: int = 0, fail_open: bool = True, publisher: Any = None
                            ) -> AsyncIterator[Guard]:
    """`spend_guard` for async code, with an async checker."""
    guard = await aopen_guard(checker, tags=tags, provider=provider, model=model, est_input=est_input,
                              est_output=est_output, fail_open=fail_open, publisher=publisher)
    try:
        yield guard
    except BaseException:
        await arelease(checker, guard)
        raise


class GuardedStreamManager:
    """A stream manager (Anthropic's `messages.stream()`) whose request leaves when it is entered: the check
    happens on entering (`with` with a sync checker, `async with` with an async one), `make(guard)` then builds
    the metering manager with the guarded model and the hold's id, and a failure to enter releases the hold."""

    def __init__(self, checker: Any, guard_args: dict, make: Callable[[Guard], Any]) -> None:
        self._checker, self._args, self._make = checker, guard_args, make
        self._guard: Guard | None = None
        self._inner: Any = None

    def __enter__(self) -> Any:
        self._guard = open_guard(self._checker, **self._args)
        try:
            self._inner = self._make(self._guard)
            return self._inner.__enter__()
        except BaseException:
            release(self._checker, self._guard)
            raise

    def __exit__(self, *exc: Any) -> Any:
        return self._inner.__exit__(*exc)

    async def __aenter__(self) -> Any:
        self._guard = await aopen_guard(self._checker, **self._args)
        try:
            self._inner = self._make(self._guard)
            return await self._inner.__aenter__()
        except BaseException:
            await arelease(self._checker, self._guard)
            raise

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)
