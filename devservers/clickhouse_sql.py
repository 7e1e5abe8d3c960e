"""A tiny ClickHouse SQL lexer: just enough to classify a statement, find its FORMAT clause, split an
``INSERT ... FORMAT X`` from the data that follows it, and spot multi-statements.

It works on bytes decoded as latin-1 so every character offset is a byte offset into the request body
(binary Native data after ``FORMAT Native`` is never decoded as UTF-8)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_WORD_CHARS = _WORD_START | set("0123456789$")
_WS = " \t\n\r\f\v"
_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")

# Statement kinds a read-only user may run (first keyword). SET and USE are handled by the server itself.
READ_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN", "("})


@dataclass
class Token:
    kind: str  # word | str | qid | num | punct
    start: int
    end: int
    depth: int
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else self.text


def tokens(s: str, pos: int = 0):
    """Yield significant tokens of s (comments and whitespace skipped). Unterminated strings / comments
    run to the end of the text; the engine reports the syntax error."""
    n = len(s)
    depth = 0
    while pos < n:
        c = s[pos]
        if c in _WS:
            pos += 1
            continue
        if s.startswith("--", pos) or (c == "#" and (pos + 1 >= n or s[pos + 1] in " !")):
            nl = s.find("\n", pos)
            pos = n if nl < 0 else nl + 1
            continue
        if s.startswith("/*", pos):
            end = s.find("*/", pos + 2)
            pos = n if end < 0 else end + 2
            continue
        start = pos
        if c == "$":  # heredoc string: $$...$$ or $tag$...$tag$
            m = _HEREDOC.match(s, pos)
            if m:
                close = s.find(m.group(0), m.end())
                pos = n if close < 0 else close + len(m.group(0))
                yield Token("str", start, pos, depth, s[start:pos])
                continue
        if c in "'\"`":
            pos += 1
            while pos < n:
                ch = s[pos]
                if ch == "\\":
                    pos += 2
                    continue
                if ch == c:
                    if pos + 1 < n and s[pos + 1] == c:  # doubled quote
                        pos += 2
                        continue
                    pos += 1
                    break
                pos += 1
            pos = min(pos, n)
            yield Token("str" if c == "'" else "qid", start, pos, depth, s[start:pos])
            continue
        if c in _WORD_START:
            while pos < n and s[pos] in _WORD_CHARS:
                pos += 1
            yield Token("word", start, pos, depth, s[start:pos])
            continue
        if c.isdigit():
            while pos < n and (s[pos].isalnum() or s[pos] in "._"):
                pos += 1
            yield Token("num", start, pos, depth, s[start:pos])
            continue
        if c in "([":
            yield Token("punct", start, pos + 1, depth, c)
            depth += 1
            pos += 1
            continue
        if c in ")]":
            depth = max(0, depth - 1)
            yield Token("punct", start, pos + 1, depth, c)
            pos += 1
            continue
        yield Token("punct", start, pos + 1, depth, c)
        pos += 1


@dataclass
class Statement:
    kind: str = ""  # first keyword, upper case ("" for an empty query)
    fmt: str | None = None  # FORMAT clause of a query / insert
    end: int = 0  # offset just after the last significant token (trailing ';' and comments dropped)
    multi: bool = False  # more than one statement
    into_outfile: bool = False
    # INSERT ... FORMAT X: the statement without FORMAT, and the offset where the data begins
    insert_prefix_end: int | None = None
    data_start: int | None = None


def _ident(tok: Token) -> str:
    if tok.kind == "qid":
        return tok.text[1:-1]
    return tok.text


def analyze(s: str) -> Statement:
    st = Statement()
    it = tokens(s)
    prev: Token | None = None
    saw_semicolon = False
    for tok in it:
        if saw_semicolon:
            if tok.text != ";":
                st.multi = True
                break
            continue
        if not st.kind:
            st.kind = tok.upper if tok.kind in ("word", "punct") else tok.text
        if tok.depth == 0 and tok.text == ";":
            saw_semicolon = True
            continue
        if st.kind == "INSERT" and tok.depth == 0 and tok.kind == "word":
            up = tok.upper
            if up in ("VALUES", "SELECT", "WITH"):
                st.end = len(s.rstrip(_WS + ";"))
                return st  # inline data / INSERT SELECT: the engine parses it all
            if up == "FORMAT":
                name = next(it, None)
                if name is None or name.kind not in ("word", "qid"):
                    break
                st.fmt = _ident(name)
                st.insert_prefix_end = tok.start
                pos = name.end
                # ClickHouse: the data starts after the first newline, or after the whitespace before it
                while pos < len(s) and s[pos] in _WS:
                    pos += 1
                    if s[pos - 1] == "\n":
                        break
                st.data_start = pos
                st.end = name.end
                return st
        if tok.depth == 0 and tok.kind == "word" and prev is not None and prev.depth == 0:
            if prev.upper == "INTO" and tok.upper == "OUTFILE":
                st.into_outfile = True
            if prev.upper == "FORMAT" and tok.kind in ("word", "qid"):
                st.fmt = _ident(tok)
        elif tok.kind == "qid" and prev is not None and prev.depth == 0 and prev.upper == "FORMAT":
            st.fmt = _ident(tok)
        st.end = tok.end
        prev = tok
    return st


def quote_string(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def setting_literal(value: str) -> str:
    """A SET value: numbers and booleans as they are, everything else as a string literal."""
    v = value.strip()
    if v and (v.lstrip("-").replace(".", "", 1).isdigit() or v.lower() in ("true", "false")):
        return v
    return quote_string(value)


def is_identifier(name: str) -> bool:
    return bool(name) and name[0] in _WORD_START and all(ch in _WORD_CHARS for ch in name)
