"""sinks.redis.scripts.pack_commands sends what redis-py's Connection.pack_commands sends (the same bytes), or
leaves the packing to redis-py (None) for argument types it does not take on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from sinks.redis.scripts import pack_commands

ARG = st.one_of(st.text(), st.binary(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
                st.floats(allow_nan=True, allow_infinity=True))
NAME = st.one_of(st.sampled_from(["EVALSHA", "GET", "SET", "HGETALL", "SCRIPT LOAD", "CONFIG  GET", "A\tB"]),
                 st.sampled_from([b"EVALSHA", b"SCRIPT LOAD", b"X\tY", b""]), st.text(min_size=1))
COMMAND = st.tuples(NAME, st.lists(ARG, max_size=12)).map(lambda t: (t[0], *t[1]))


def _redis_py(commands) -> bytes:
    return b"".join(bytes(c) for c in Connection().pack_commands(commands))


@given(st.lists(COMMAND, min_size=1, max_size=5))
def test_the_same_bytes_as_redis_py(commands):
    try:
        expected = _redis_py(commands)
    except (UnicodeEncodeError, TypeError, ValueError, DataError):  # what redis-py refuses, pack_commands refuses
        with pytest.raises((UnicodeEncodeError, TypeError, ValueError)):
            pack_commands(commands)
        return
    assert pack_commands(commands) == expected


def test_a_big_command_is_one_buffer_of_the_same_bytes():
    keys = [f"ss:{{team:payments}}:h:{i}" for i in range(200)]
    cmd = ("EVALSHA", "a" * 40, len(keys), *keys, "x" * 10_000, 1_764_745_600_000)
    assert pack_commands([cmd]) == _redis_py([cmd])


@pytest.mark.parametrize("arg", [True, None, bytearray(b"x"), memoryview(b"x"), object()])
def test_other_argument_types_are_left_to_redis_py(arg):
    assert pack_commands([("SET", "k", arg)]) is None


def test_a_string_redis_py_cannot_encode_is_refused_the_same_way():
    cmd = ("SET", "k", "\ud800")  # a lone surrogate: not UTF-8
    with pytest.raises(UnicodeEncodeError):
        _redis_py([cmd])
    with pytest.raises(UnicodeEncodeError):
        pack_commands([cmd])
