"""Small helpers every reader shares: find files in a bundle, read them whether gzipped or not.

Exports land in S3 gzipped or not (CloudTrail always gzips, CUR and flow logs may or may not), and
people rename things, so gzip is detected by its magic bytes rather than trusted from the extension.
A file that cannot be read at all raises :class:`UnreadableFile` with a message fit for a human; the
reader turns it into one ``BundleIssue`` and goes on with the rest of the bundle.
"""

from __future__ import annotations

import gc
import io
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

GZIP_MAGIC = b"\x1f\x8b"

# Bounds that keep a broken or hostile file from taking the machine's memory. A whole JSON document
# (a CloudTrail log file, iam.json...) is read at once; AWS writes them at tens of megabytes, so
# one that decompresses past this is refused. Line-oriented files (flow logs, JSON lines) are
# streamed, and a line longer than MAX_LINE_BYTES is skipped (with an issue) without being held.
MAX_DOCUMENT_BYTES = 512 << 20
MAX_LINE_BYTES = 1 << 20


class UnreadableFile(ValueError):
    """The whole file cannot be read (truncated gzip, not JSON, missing columns...)."""


def list_files(root: Path, subdir: str, suffixes: Iterable[str]) -> list[Path]:
    """Every regular file under ``root/subdir`` whose name ends with one of ``suffixes``, sorted.

    Sorted so runs are reproducible whatever order the file system lists them in.
    """
    base = Path(root) / subdir
    if not base.is_dir():
        return []
    ends = tuple(s.lower() for s in suffixes)
    return sorted(p for p in base.rglob("*") if p.name.lower().endswith(ends) and p.is_file())


try:  # ISA-L inflates 2-3x faster than zlib; optional (pip install isal), zlib otherwise
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - depends on the environment
    _isal_zlib = None


def gunzip(data: bytes, limit: int | None = None) -> bytes:
    """Decompress every gzip member in ``data`` (concatenated members are legal and common).

    Raises UnreadableFile for a cut or corrupt stream: a half-written object in S3 must not pass
    for a complete (shorter) one; and for one that decompresses past ``limit`` bytes
    (MAX_DOCUMENT_BYTES by default), which is refused rather than held.
    """
    limit = MAX_DOCUMENT_BYTES if limit is None else limit
    if _isal_zlib is not None:
        try:
            return _gunzip_with(_isal_zlib, data, limit)
        except Exception:
            pass  # zlib decides, and says what is wrong in its own words
    return _gunzip_with(zlib, data, limit)


def _too_big(limit: int) -> UnreadableFile:
    return UnreadableFile(f"larger than {_size(limit)} once decompressed; refused (one document must fit in memory)")


def _size(n: int) -> str:
    for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= k:
            return f"{n / k:g} {unit}"
    return f"{n} bytes"


_INFLATE_STEP = 64 << 20


def _gunzip_with(z: Any, data: bytes, limit: int) -> bytes:
    out: list[bytes] = []
    total = 0
    while data:
        d = z.decompressobj(wbits=31)
        rest = data
        while not d.eof:
            # In steps, so a bomb is refused having inflated no more than the limit and one step.
            try:
                chunk = d.decompress(rest, min(_INFLATE_STEP, limit - total + 1))
            except zlib.error as e:
                raise UnreadableFile(f"corrupt gzip stream ({e})") from None
            rest = d.unconsumed_tail
            if not chunk and not rest:
                break  # input used up before the member's end
            total += len(chunk)
            if total > limit:
                raise _too_big(limit)
            out.append(chunk)
        if not d.eof:
            raise UnreadableFile("truncated gzip stream")
        data = d.unused_data
        if data[:2] != GZIP_MAGIC:  # trailing padding after the last member: ignored, as gzip(1) does
            break
    return out[0] if len(out) == 1 else b"".join(out)


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's content, decompressed when it is gzip; UnreadableFile past ``limit`` bytes
    (MAX_DOCUMENT_BYTES by default), before anything of it is read."""
    limit = MAX_DOCUMENT_BYTES if limit is None else limit
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:  # gzip does not shrink what is this large (nor anything incompressible)
                raise UnreadableFile(f"{_size(size)} is more than the {_size(limit)} one document may take; refused")
            data = f.read(limit + 1)
    except OSError as e:
        raise UnreadableFile(f"cannot read file ({e.strerror or e})") from None
    if data[:2] == GZIP_MAGIC:
        return gunzip(data, limit)
    if len(data) > limit:  # grew while being read
        raise UnreadableFile(f"more than the {_size(limit)} one document may take; refused")
    return data


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError:
        return False


class _GunzipStream(io.RawIOBase):
    """A streaming gzip reader that says "truncated gzip stream" instead of EOFError.

    Inflates at most a megabyte at a time, so a small file that expands to gigabytes (a "gzip
    bomb", or one enormous line) never sits in memory whole.
    """

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._d = zlib.decompressobj(wbits=31)
        self._in = b""  # compressed input not yet inflated
        self._buf = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        while not self._buf and not self._done:
            if not self._in:
                self._in = self._raw.read(1 << 20)
            if self._d.eof:
                if len(self._in) == 1:
                    self._in += self._raw.read(1)
                if self._in[:2] != GZIP_MAGIC:  # the end, or padding after the last member (ignored)
                    self._done = True
                    break
                self._d = zlib.decompressobj(wbits=31)  # another member follows
            elif not self._in:
                raise UnreadableFile("truncated gzip stream")
            try:
                self._buf = self._d.decompress(self._in, 1 << 20)
            except zlib.error as e:
                raise UnreadableFile(f"corrupt gzip stream ({e})") from None
            self._in = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path) -> IO[bytes]:
    """A buffered binary stream of the file's content, gunzipped on the fly when it is gzip."""
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return io.BufferedReader(_GunzipStream(raw), buffer_size=1 << 20)
    raw.seek(0)
    return raw


def iter_lines(path: Path, max_line: int | None = None) -> Iterator[tuple[int, bytes | None]]:
    """(line number from 1, raw line without the newline) for a text file, gzipped or not.

    Streams, so a large flow-log file is never held whole; a cut gzip raises UnreadableFile after
    the lines before the cut have been yielded. A line longer than ``max_line`` bytes
    (MAX_LINE_BYTES by default) is read past in chunks and yielded as None, for the caller to
    report: one multi-gigabyte line costs no more memory than a normal one.
    """
    max_line = MAX_LINE_BYTES if max_line is None else max_line
    with open_binary(path) as f:
        n = 0
        while True:
            line = f.readline(max_line + 1)
            if not line:
                return
            n += 1
            if len(line) > max_line and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip to the end of the line
                    line = f.readline(1 << 20)
                yield n, None
                continue
            yield n, line.rstrip(b"\r\n")


# ---------------------------------------------------------------------------------------------
# text encodings

_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32"),
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32"),
    (b"\xfe\xff", "utf-16-be", "UTF-16"),
    (b"\xff\xfe", "utf-16-le", "UTF-16"),
)


def sniff_encoding(head: bytes) -> tuple[str, str, int] | None:
    """(codec, name people know, BOM length) when ``head`` (a file's first bytes) is UTF-16 or
    UTF-32 text, with a byte-order mark or plain ASCII-range text without one; "binary" (and the
    offset of a NUL byte) when it holds NUL bytes otherwise; None for anything else (UTF-8 or an
    8-bit encoding, which the parsers judge). A UTF-8 BOM is not reported (see :func:`to_utf8`).
    """
    for bom, codec, name in _BOMS:
        if head.startswith(bom):
            return codec, name, len(bom)
    h = head[:4096]
    if b"\x00" not in h:
        return None
    if len(h) >= 4:
        even, odd = h[0::2], h[1::2]
        if odd.count(0) == len(odd) and even.count(0) < len(even) // 4 + 1:
            return "utf-16-le", "UTF-16", 0
        if even.count(0) == len(even) and odd.count(0) < len(odd) // 4 + 1:
            return "utf-16-be", "UTF-16", 0
    return "binary", "binary", h.index(b"\x00")


def to_utf8(data: bytes, what: str = "text") -> tuple[bytes, str | None]:
    """``data`` as UTF-8 bytes, and a note saying what was done to get there (None if nothing).

    A UTF-8 byte-order mark is dropped silently (Excel writes one; it is still UTF-8). UTF-16 and
    UTF-32 are transcoded, with a note. Bytes that are not UTF-8 (Latin-1 text, stray garbage) are
    replaced with U+FFFD, with a note naming the first; NUL bytes in what is not UTF-16/32 make the
    data binary, which raises UnreadableFile. ``what`` names the expected content in messages.
    """
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    enc = sniff_encoding(data[:4096])
    if enc is not None:
        codec, name, bom = enc
        if codec == "binary":
            raise UnreadableFile(f"binary data, not {what} (NUL byte at offset {bom})")
        text = data[bom:].decode(codec, errors="replace")
        return text.encode("utf-8", errors="replace"), f"encoded as {name}, not UTF-8; transcoded"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        nul = data.find(b"\x00")
        if nul >= 0:
            raise UnreadableFile(f"binary data, not {what} (NUL byte at offset {nul})") from None
        bad = data[e.start:e.start + 1].hex()
        fixed = data.decode("utf-8", errors="replace").encode("utf-8")
        return fixed, f"not valid UTF-8 (byte 0x{bad} at offset {e.start}); undecodable bytes replaced"
    return data, None


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small objects.

    JSON decoding creates dicts by the million; CPython's generational GC then rescans them over
    and over and parsing runs 2-3x slower. None of them form cycles, so nothing is lost by pausing.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_HEAP_SETTLED = False


def settle_heap() -> None:
    """Give glibc's allocator, once per process, the thresholds it would settle on by itself.

    glibc hands blocks over 128 KiB out as fresh mappings and gives freed memory at the top of the
    heap back to the system, raising both thresholds only as big blocks come and go. Reading
    thousands of multi-megabyte files then takes a page fault per 4 KiB of every file, which costs
    over a tenth of a CloudTrail fold. These are glibc's own maximums for its dynamic
    thresholds (mmap 32 MiB, trim twice that); elsewhere (musl, macOS, Windows) nothing happens.
    """
    global _HEAP_SETTLED
    if _HEAP_SETTLED:
        return
    _HEAP_SETTLED = True
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except Exception:  # pragma: no cover - not glibc
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD


def release_memory() -> None:
    """Hand memory freed since the last call back to the system, where the allocators let it.

    Arrow's pool (mimalloc or jemalloc) keeps what a big CSV read freed, and glibc keeps freed
    chunks inside its heap; after a stage that built and dropped hundreds of megabytes, both are
    asked to return them, after a collection for what only cycles held. Costs a few milliseconds.
    """
    import gc

    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # pragma: no cover - older pyarrow
        pass
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except Exception:  # pragma: no cover - not glibc
        pass


def iter_text_lines(path: Path, note: Callable[[str], None], what: str = "text",
                    max_line: int | None = None) -> Iterator[tuple[int, bytes | None]]:
    """:func:`iter_lines` for a line-oriented text file whose encoding is not trusted.

    UTF-8 (with or without a byte-order mark) streams; UTF-16/32 text is read whole, transcoded,
    and ``note`` hears so; binary data and an empty file raise UnreadableFile (before any line).
    Lines longer than ``max_line`` come as None, as from :func:`iter_lines`.
    """
    with open_binary(path) as f:
        head = f.read(4096)
    if not head:
        raise UnreadableFile("empty file (0 bytes)")
    enc = sniff_encoding(head[3:] if head[:3] == b"\xef\xbb\xbf" else head)
    if enc is None:
        for n, line in iter_lines(path, max_line):
            if n == 1 and line is not None and line[:3] == b"\xef\xbb\xbf":
                line = line[3:]
            yield n, line
        return
    if enc[0] == "binary":
        raise UnreadableFile(f"binary data, not {what} (NUL byte at offset {enc[2]})")
    data, msg = to_utf8(read_bytes(path), what)
    if msg:
        note(msg)
    limit = MAX_LINE_BYTES if max_line is None else max_line
    for n, line in enumerate(data.split(b"\n"), 1):
        yield n, (line.rstrip(b"\r") if len(line) <= limit else None)
