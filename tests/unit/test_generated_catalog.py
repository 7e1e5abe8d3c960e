"""The committed genai-prices catalog equals a fresh regeneration from the pinned genai-prices version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_catalog_is_a_fresh_regeneration_from_the_pinned_genai_prices():
    genai_prices = pytest.importorskip("genai_prices", reason="the `prices` extra (installed by `make test`)")
    from spendstream.data import genai_prices_export as export

    pin = re.search(r'"genai-prices==([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert genai_prices.__version__ == pin, "install the pinned version: pip install -e '.[prices]'"
    committed = (ROOT / "spendstream" / "data" / export.CATALOG_MODULE).read_text()
    assert committed.startswith("# @generated")
    assert export.render_catalog_module(export.export_catalog()) == committed
