"""Charts as base64 PNG data URIs (matplotlib, Agg backend: no display needed). Money arrives as nano-USD and is
converted to float dollars here only, for drawing."""

from __future__ import annotations

import base64
import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["daily_trend", "unit_trend", "bars", "line_trend"]

_BLUE, _GREY, _ORANGE = "#2680c2", "#bcccdc", "#de911d"


def _uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#eef2f6")
    ax.set_axisbelow(True)


def daily_trend(days: Sequence[tuple[str, int]], highlight_last: int = 7) -> str:
    """Daily spend bars; the last `highlight_last` days (this week) in colour, earlier ones grey."""
    fig, ax = plt.subplots(figsize=(9.5, 2.8))
    xs = [d[5:] for d, _ in days]
    ys = [v / 1e9 for _, v in days]
    colors = [_GREY] * (len(days) - highlight_last) + [_BLUE] * min(highlight_last, len(days))
    ax.bar(xs, ys, color=colors)
    ax.set_ylabel("USD / day")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    _style(ax)
    return _uri(fig)


def unit_trend(labels: Sequence[str], per_1k_requests: Sequence[float | None], per_1m_tokens: Sequence[float | None]) -> str:
    """Two unit-cost lines on twin axes: USD per 1k requests and USD per 1M tokens, by week."""
    fig, ax = plt.subplots(figsize=(9.5, 2.6))
    ax.plot(labels, [v if v is not None else float("nan") for v in per_1k_requests], marker="o", color=_BLUE,
            label="$ / 1k requests")
    ax.set_ylabel("$ / 1k requests", color=_BLUE)
    ax2 = ax.twinx()
    ax2.plot(labels, [v if v is not None else float("nan") for v in per_1m_tokens], marker="s", color=_ORANGE,
             label="$ / 1M tokens")
    ax2.set_ylabel("$ / 1M tokens", color=_ORANGE)
    _style(ax)
    ax2.spines["top"].set_visible(False)
    return _uri(fig)


def bars(labels: Sequence[str], values_nanos: Sequence[int], title: str = "") -> str:
    """Horizontal bars of USD amounts, largest on top."""
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * max(3, len(labels)) + 0.6))
    ax.barh(list(labels)[::-1], [v / 1e9 for v in values_nanos][::-1], color=_BLUE)
    ax.set_xlabel("USD")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    _style(ax)
    ax.grid(axis="x", color="#eef2f6")
    return _uri(fig)


def line_trend(labels: Sequence[str], values: Sequence[float | None], ylabel: str) -> str:
    fig, ax = plt.subplots(figsize=(9.5, 2.4))
    ax.plot(labels, [v if v is not None else float("nan") for v in values], marker="o", color=_BLUE)
    ax.set_ylabel(ylabel)
    _style(ax)
    return _uri(fig)
