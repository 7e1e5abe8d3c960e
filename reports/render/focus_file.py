"""Write FOCUS rows to CSV (decimals as exact strings, null as empty) or Parquet (decimal128(38, 9) money and
quantities, decimal128(38, 12) unit prices,
timestamp[s, UTC] dates, string JSON Tags)."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from spendstream.focus import COLUMNS, DECIMAL_COLUMNS, UNIT_PRICE_COLUMNS

__all__ = ["write_focus"]

_DATES = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
_INTS = ("x_Events",)


def _cell(v: Any) -> str:
    return "" if v is None else f"{v:f}" if hasattr(v, "as_tuple") else str(v)


def write_focus(rows: Iterable[dict[str, Any]], out: Path) -> int:
    """Write rows to `out` (.csv or .parquet); returns the row count. Raises ValueError on another suffix."""
    if out.suffix == ".csv":
        n = 0
        with out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for r in rows:
                w.writerow([_cell(r[c]) for c in COLUMNS])
                n += 1
        return n
    if out.suffix != ".parquet":
        raise ValueError(f"FOCUS export must end in .csv or .parquet, not {out.name}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    def typ(c: str):
        if c in DECIMAL_COLUMNS:
            return pa.decimal128(38, 9)
        if c in UNIT_PRICE_COLUMNS:
            return pa.decimal128(38, 12)
        if c in _DATES:
            return pa.timestamp("s", tz="UTC")
        if c in _INTS:
            return pa.int64()
        return pa.string()

    data = list(rows)
    cols = {c: [r[c] for r in data] for c in COLUMNS}
    for c in _DATES:
        cols[c] = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in cols[c]]
    table = pa.table({c: pa.array(cols[c], type=typ(c)) for c in COLUMNS})
    pq.write_table(table, out)
    return len(data)
