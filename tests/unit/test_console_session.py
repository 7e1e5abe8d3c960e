"""The console's sign-in cookie and CSRF rules, and its budget form (pure: no servers)."""

from __future__ import annotations

import pytest

from enforcement.console.budget_form import budget_from_form, form_values
from enforcement.console.jobs import job_args
from enforcement.console.routes_admin import changes
from enforcement.console.session import CSP, cookie_attrs, csrf_ok, new_csrf_token, parse_form, security_headers

HOST = "http://127.0.0.1:18080/"
SAME = {"origin": "http://127.0.0.1:18080", "sec-fetch-site": "same-origin"}


def test_a_form_post_with_the_cookies_token_from_this_origin_passes():
    token = new_csrf_token()
    assert csrf_ok(token, token, SAME, HOST)
    assert csrf_ok(token, token, {}, HOST)  # a client that sends neither header (curl, old browsers): token alone


@pytest.mark.parametrize("cookie,field,headers", [
    ("abc", None, SAME),                                       # no token in the form
    (None, "abc", SAME),                                       # no cookie
    ("abc", "abd", SAME),                                      # a different token
    ("abc", "abc", {"origin": "https://evil.test"}),           # another origin
    ("abc", "abc", {"origin": "http://127.0.0.1:9999"}),       # another port is another origin
    ("abc", "abc", {"origin": "null"}),                        # an opaque origin (sandboxed frame, data: URL)
    ("abc", "abc", {"sec-fetch-site": "cross-site"}),          # the browser says cross-site
    ("abc", "abc", {"sec-fetch-site": "same-site"}),           # a sibling subdomain is not this origin
])
def test_a_post_without_the_right_token_or_from_elsewhere_is_refused(cookie, field, headers):
    assert not csrf_ok(cookie, field, headers, HOST)


def test_tokens_are_random_and_long():
    tokens = {new_csrf_token() for _ in range(100)}
    assert len(tokens) == 100 and min(len(t) for t in tokens) >= 40


def test_both_cookies_are_secure_httponly_strict_and_scoped_to_the_console():
    attrs = cookie_attrs()
    assert (attrs["secure"], attrs["httponly"], attrs["samesite"], attrs["path"]) == (True, True, "strict", "/ui")


def test_pages_carry_a_csp_without_inline_script_or_style():
    h = security_headers()
    assert h["Content-Security-Policy"] == CSP
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert "script-src 'self'" in CSP and "style-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert h["Cache-Control"] == "no-store" and h["X-Frame-Options"] == "DENY"


def test_a_form_body_keeps_blank_values_and_the_last_of_repeated_names():
    assert parse_form(b"a=1&b=&a=2&key=ss_x%2By") == {"a": "2", "b": "", "key": "ss_x+y"}


def _form(**kw) -> dict[str, str]:
    return {**form_values(None), "id": "pay-m", "scope_value": "payments", "limit_usd": "100", **kw}


def test_a_valid_form_is_the_budget_the_api_would_store():
    b, errors = budget_from_form(_form(thresholds="50, 90", mode="enforce"))
    assert errors == {}
    assert (b.id, b.scope.kind, b.scope.value, b.limit_nanos, b.thresholds, b.mode) == \
        ("pay-m", "team", "payments", 100 * 10**9, (50, 90), "enforce")


@pytest.mark.parametrize("kw,field,fragment", [
    ({"limit_usd": "12.5.0"}, "limit_usd", "pattern"),
    ({"limit_usd": ""}, "limit_usd", "pattern"),
    ({"id": "has space"}, "id", "pattern"),
    ({"thresholds": "fifty"}, "thresholds", "whole percents"),
    ({"action": "downgrade"}, "downgrade_model", "downgrade_model"),
    ({"period": "fortnight"}, "period", "day"),
])
def test_a_bad_form_says_which_field_is_wrong(kw, field, fragment):
    b, errors = budget_from_form(_form(**kw))
    assert b is None and fragment in errors[field], errors


def test_editing_keeps_the_fields_the_form_does_not_show():
    base, _ = budget_from_form(_form(mode="enforce"))
    base = base.model_copy(update={"requests_per_minute": 600, "carry_over": True})
    edited, errors = budget_from_form({**form_values(base), "limit_usd": "150"}, base)
    assert errors == {} and (edited.limit_usd, edited.requests_per_minute, edited.carry_over) == ("150", 600, True)


def test_history_rows_name_each_changed_field():
    assert changes('{"limit_usd": "100", "mode": "enforce"}', '{"limit_usd": "150", "mode": "enforce"}') == \
        ['limit_usd: "100" → "150"']
    assert changes("", '{"limit_usd": "1"}') == ['limit_usd: null → "1"']


@pytest.mark.parametrize("kind,period", [("weekly", "2026-11"), ("monthly", "2026-W47"), ("focus", "11/2026"),
                                         ("invoice", "2026-11")])
def test_a_report_job_refuses_a_bad_period_or_kind(kind, period, tmp_path):
    with pytest.raises(ValueError):
        job_args(kind, period, tmp_path)


def test_a_read_keys_digest_is_limited_to_its_teams(tmp_path):
    args = job_args("weekly", "2026-W47", tmp_path, teams=("payments",))
    assert args[:4] == ["digest", "weekly", "--week", "2026-W47"] and args[-2:] == ["--team", "payments"]
