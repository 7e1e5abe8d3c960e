"""HTTP body codecs of the ClickHouse HTTP interface: Content-Encoding / Accept-Encoding (gzip, deflate,
lz4 frame, zstd, brotli when installed), multipart/form-data query fields, and ClickHouse's own
``decompress=1`` block format for request bodies."""

from __future__ import annotations

import gzip
import zlib
from email.parser import BytesParser
from email.policy import HTTP

try:
    import lz4.frame as _lz4_frame
    import lz4.block as _lz4_block
except ImportError:  # pragma: no cover - lz4 is a clickhouse-connect dependency
    _lz4_frame = _lz4_block = None
try:
    from backports import zstd as _zstd  # clickhouse-connect's own zstd dependency on Python < 3.14
except ImportError:  # pragma: no cover
    try:
        from compression import zstd as _zstd  # type: ignore[no-redef]
    except ImportError:
        _zstd = None
try:
    import brotli as _brotli  # type: ignore[import-not-found]
except ImportError:
    _brotli = None


class CodecError(ValueError):
    """A body that cannot be decoded (maps to ClickHouse code 1001 / HTTP 400)."""


def supported_encodings() -> list[str]:
    out = []
    if _lz4_frame is not None:
        out.append("lz4")
    if _zstd is not None:
        out.append("zstd")
    if _brotli is not None:
        out.append("br")
    out += ["gzip", "deflate"]
    return out


SUPPORTED = supported_encodings()


def _lz4_frames(data: bytes) -> bytes:
    out = bytearray()
    while data:
        d = _lz4_frame.LZ4FrameDecompressor()
        out += d.decompress(data)
        if not d.eof:
            raise CodecError("truncated lz4 frame")
        data = d.unused_data
    return bytes(out)


def decode_body(data: bytes, encoding: str | None) -> bytes:
    enc = (encoding or "").strip().lower()
    if not enc or enc == "identity" or not data:
        return data
    try:
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(data)
        if enc == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return zlib.decompress(data, -15)  # raw deflate
        if enc == "lz4" and _lz4_frame is not None:
            return _lz4_frames(data)
        if enc in ("zstd", "zstandard") and _zstd is not None:
            return _zstd.decompress(data)
        if enc == "br" and _brotli is not None:
            return _brotli.decompress(data)
    except CodecError:
        raise
    except Exception as ex:
        raise CodecError(f"Cannot decompress request body with Content-Encoding {enc}: {ex}") from ex
    raise CodecError(f"Unknown HTTP Content-Encoding: {enc}")


def choose_encoding(accept: str | None) -> str | None:
    """The first encoding in the client's Accept-Encoding that we can produce (q=0 excluded)."""
    if not accept:
        return None
    for part in accept.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if params.replace(" ", "").startswith("q=0") and params.replace(" ", "") in ("q=0", "q=0.0", "q=0.00"):
            continue
        if name in SUPPORTED:
            return name
    return None


def encode_body(data: bytes, enc: str) -> bytes:
    if enc == "gzip":
        return gzip.compress(data, compresslevel=3)
    if enc == "deflate":
        return zlib.compress(data, 3)
    if enc == "lz4":
        return _lz4_frame.compress(data)
    if enc == "zstd":
        return _zstd.compress(data)
    if enc == "br":
        return _brotli.compress(data)
    raise CodecError(enc)


_CH_METHODS = {0x82: "lz4", 0x90: "zstd", 0x02: "none"}


def decode_native_blocks(data: bytes) -> bytes:
    """ClickHouse's ``decompress=1`` framing: per block 16 checksum bytes (not verified here), a method
    byte, UInt32 compressed size (including the 9 header bytes) and UInt32 uncompressed size."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        if pos + 25 > len(data):
            raise CodecError("truncated compressed block header")
        method = data[pos + 16]
        csize = int.from_bytes(data[pos + 17 : pos + 21], "little")
        usize = int.from_bytes(data[pos + 21 : pos + 25], "little")
        payload = data[pos + 25 : pos + 16 + csize]
        if len(payload) != csize - 9:
            raise CodecError("truncated compressed block")
        kind = _CH_METHODS.get(method)
        try:
            if kind == "lz4" and _lz4_block is not None:
                out += _lz4_block.decompress(payload, uncompressed_size=usize)
            elif kind == "zstd" and _zstd is not None:
                out += _zstd.decompress(payload)
            elif kind == "none":
                out += payload
            else:
                raise CodecError(f"Unknown compression method 0x{method:02x}")
        except CodecError:
            raise
        except Exception as ex:
            raise CodecError(f"Cannot decompress block: {ex}") from ex
        pos += 16 + csize
    return bytes(out)


def parse_multipart(body: bytes, content_type: str) -> dict[str, str]:
    """Text fields of a multipart/form-data body (the query and param_* fields clickhouse-connect sends
    for long parameters). File parts (external data) are rejected."""
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise CodecError("malformed multipart/form-data body")
    fields: dict[str, str] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        if part.get_param("filename", header="content-disposition") is not None:
            raise CodecError("external data (file parts) is not supported by this dev server")
        payload = part.get_payload(decode=True) or b""
        fields[str(name)] = payload.decode("utf-8", errors="replace")
    return fields
