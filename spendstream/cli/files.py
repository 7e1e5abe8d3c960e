"""File reading for entry points: price books (YAML / TOML) and JSONL event files. The core never reads files;
these functions do, then hand plain data to the pure parsers.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import yaml

from spendstream.errors import ConfigError
from spendstream.pricebook import parse_price_book
from spendstream.pricing import PriceBook

__all__ = ["read_yaml", "load_price_book", "price_book_for", "load_allocation_rules", "read_price_book_data",
           "read_events_jsonl"]

_INT_FIELDS = ("event_time", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
               "reasoning_tokens", "request_count", "egress_bytes")


class _LineDict(dict):
    """A mapping that remembers its 1-based line in the file, so errors can say 'pricebook.yaml:12'."""

    line: int | None = None


class _PriceBookLoader(yaml.SafeLoader):
    """SafeLoader that records mapping lines and keeps floats as their literal text ('0.08' stays exact)."""


def _mapping(loader: _PriceBookLoader, node: yaml.MappingNode) -> _LineDict:
    out = _LineDict(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


_PriceBookLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_PriceBookLoader.add_constructor("tag:yaml.org,2002:float", lambda loader, node: loader.construct_scalar(node))


def read_yaml(path: Path, what: str, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The loaded YAML document at `path`. Raises ConfigError naming the file and what it was meant to be."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - SafeLoader or a subclass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {what} is not valid YAML: {exc}") from exc


def read_price_book_data(path: Path) -> Any:
    """The loaded document of a .yaml / .yml / .toml price book. Raises ConfigError naming the file (and line)."""
    path = Path(path)
    if path.suffix == ".toml":
        try:
            return tomllib.loads(path.read_text(), parse_float=Decimal)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read price book: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"{path}: a price book is a .yaml, .yml or .toml file")
    return read_yaml(path, "price book", _PriceBookLoader)


def load_price_book(path: Path, *, with_catalog: bool = True) -> PriceBook:
    """A PriceBook from a file; `extends: genai-prices` (the default) layers it over the shipped catalog.
    Raises ConfigError '<path>:<line>: <field>: <problem>' for a bad book."""
    spec = parse_price_book(read_price_book_data(path), source=str(path))
    catalog = None
    if spec.extends_catalog and with_catalog:
        from spendstream.data.catalog import load_default_catalog

        catalog = load_default_catalog()
    return PriceBook(spec, catalog)


def price_book_for(path: Path | None) -> PriceBook:
    """The configured price book file, or the built-in catalog when none is configured."""
    if path is None:
        from spendstream.pricing import default_price_book

        return default_price_book()
    return load_price_book(path)


def load_allocation_rules(path: Path):
    """Ownership rules from a YAML file (examples/allocation.yaml). Raises ConfigError naming the rule."""
    from spendstream.allocation_rules import parse_rules

    return parse_rules(read_yaml(path, "allocation rules"), str(path))


def read_events_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Usage events, one JSON object a line (blank lines skipped). Integer fields must be whole numbers (1500 or
    1500.0); anything else raises ConfigError naming the line, so no float reaches pricing."""
    path = Path(path)
    try:
        fh = path.open()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read events: {exc}") from exc
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{n}: not JSON: {exc}") from exc
            if not isinstance(event, dict):
                raise ConfigError(f"{path}:{n}: expected a JSON object")
            for key in _INT_FIELDS:
                value = event.get(key)
                if isinstance(value, float):
                    if not value.is_integer():
                        raise ConfigError(f"{path}:{n}: {key}: expected a whole number, got {value!r}")
                    event[key] = int(value)
                elif value is not None and not isinstance(value, int):
                    raise ConfigError(f"{path}:{n}: {key}: expected a whole number, got {value!r}")
            if "gpu_seconds" in event and event["gpu_seconds"] is not None:
                event["gpu_seconds"] = float(event["gpu_seconds"])
            yield event
