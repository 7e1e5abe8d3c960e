"""HTML building blocks: one page shell with inline CSS, KPI cards, tables with inline bars. No external assets,
so a report is a single file that opens anywhere (mail, wiki, a laptop offline)."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Iterable, Sequence

from spendstream.money import format_usd

__all__ = ["usd", "page", "card", "table", "bar", "delta_badge", "section", "esc"]

esc = escape

_CSS = """
*{box-sizing:border-box}body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#1f2933;
background:#f5f7fa;margin:0;padding:24px}main{max-width:1040px;margin:0 auto}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;color:#243b53}
.sub{color:#627d98;margin-bottom:18px}.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:12px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#829ab1}
.card .value{font-size:24px;font-weight:650;margin:4px 0}.card .note{font-size:13px;color:#627d98}
.panel{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin-bottom:12px}
table{border-collapse:collapse;width:100%;font-size:14px}th{text-align:left;color:#627d98;font-weight:600;
border-bottom:2px solid #d9e2ec;padding:6px 8px}td{padding:6px 8px;border-bottom:1px solid #f0f4f8}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}tr.total td{font-weight:700;border-top:2px solid #bcccdc}
.bar{background:#dceefb;height:8px;border-radius:4px}.bar span{display:block;height:8px;border-radius:4px;background:#2680c2}
.up{color:#c63737}.down{color:#1f8a4c}.flat{color:#627d98}.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px}
.ok{background:#e3f9e5;color:#1f8a4c}.risk{background:#fff3c4;color:#8d6708}.over{background:#ffe3e3;color:#c63737}
.muted{color:#829ab1;font-size:13px}img{max-width:100%}footer{margin-top:28px;color:#829ab1;font-size:12px}
"""


def usd(nanos: int, places: int = 2) -> str:
    """'$1,234.50' / '-$3.10' (half-even to `places`)."""
    d = Decimal(format_usd(abs(nanos), places))
    return f"{'-' if nanos < 0 and d else ''}${d:,.{places}f}"


def money(nanos: int, places: int = 2, currency: str = "USD") -> str:
    """`usd` for USD; '1,234.50 EUR' / '-3.10 EUR' for nano-units of another currency (half-even to `places`)."""
    if currency == "USD":
        return usd(nanos, places)
    d = Decimal(format_usd(abs(nanos), places))
    return f"{'-' if nanos < 0 and d else ''}{d:,.{places}f} {currency}"


def page(title: str, subtitle: str, body: Iterable[str], footer: str = "") -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{_CSS}</style></head>"
            f"<body><main><h1>{esc(title)}</h1><div class='sub'>{esc(subtitle)}</div>{''.join(body)}"
            f"<footer>{footer}</footer></main></body></html>")


def card(label: str, value: str, note: str = "") -> str:
    """`note` is trusted HTML (badges); label and value are escaped."""
    return (f"<div class='card'><div class='label'>{esc(label)}</div><div class='value'>{esc(value)}</div>"
            f"<div class='note'>{note}</div></div>")


def section(title: str, *parts: str) -> str:
    return f"<h2>{esc(title)}</h2><div class='panel'>{''.join(parts)}</div>"


def bar(part: int, whole: int) -> str:
    w = 0 if whole <= 0 else max(0, min(100, round(100 * part / whole)))
    return f"<div class='bar'><span style='width:{w}%'></span></div>"


def delta_badge(change: str, cost_up_is_bad: bool = True) -> str:
    """A coloured '+12.5%' / '-3.0%' / 'new' badge for a change string from spendstream.forecast.change_pct."""
    if change in ("—", "new"):
        return f"<span class='flat'>{esc(change)}</span>"
    up = change.startswith("+") and change != "+0.0"
    down = change.startswith("-")
    cls = ("up" if cost_up_is_bad else "down") if up else ("down" if cost_up_is_bad else "up") if down else "flat"
    arrow = "▲" if up else "▼" if down else "•"
    return f"<span class='{cls}'>{arrow} {esc(change)}%</span>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], num: Sequence[int] = (), raw: Sequence[int] = (),
          total: Sequence[str] | None = None) -> str:
    """Cells are escaped except the column indexes in `raw` (trusted HTML, e.g. bars); `num` right-aligns."""
    def cells(r: Sequence[str], tag: str) -> str:
        return "".join(f"<{tag}{' class=num' if i in num else ''}>{c if i in raw else esc(str(c))}</{tag}>"
                       for i, c in enumerate(r))
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    foot = f"<tr class='total'>{cells(total, 'td')}</tr>" if total else ""
    return f"<table><thead><tr>{cells(headers, 'th')}</tr></thead><tbody>{body}{foot}</tbody></table>"
