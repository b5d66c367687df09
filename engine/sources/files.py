"""Small helpers every reader shares: find files in a bundle, read them whether gzipped or not.

Exports land in S3 gzipped or not (CloudTrail always gzips, CUR and flow logs may or may not), and
people rename things, so gzip is detected by its magic bytes rather than trusted from the extension.
A file that cannot be read at all raises :class:`UnreadableFile` with a message fit for a human; the
reader turns it into one ``BundleIssue`` and goes on with the rest of the bundle.
"""

from __future__ import annotations

import gc
import io
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

GZIP_MAGIC = b"\x1f\x8b"


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


def gunzip(data: bytes) -> bytes:
    """Decompress every gzip member in ``data`` (concatenated members are legal and common).

    Raises UnreadableFile for a cut or corrupt stream: a half-written object in S3 must not pass
    for a complete (shorter) one.
    """
    if _isal_zlib is not None:
        try:
            return _gunzip_with(_isal_zlib, data)
        except Exception:
            pass  # zlib decides, and says what is wrong in its own words
    return _gunzip_with(zlib, data)


def _gunzip_with(z: Any, data: bytes) -> bytes:
    out: list[bytes] = []
    while data:
        d = z.decompressobj(wbits=31)
        try:
            out.append(d.decompress(data))
        except zlib.error as e:
            raise UnreadableFile(f"corrupt gzip stream ({e})") from None
        if not d.eof:
            raise UnreadableFile("truncated gzip stream")
        data = d.unused_data
        if data[:2] != GZIP_MAGIC:  # trailing padding after the last member: ignored, as gzip(1) does
            break
    return b"".join(out)


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UnreadableFile(f"cannot read file ({e.strerror or e})") from None
    if data[:2] == GZIP_MAGIC:
        return gunzip(data)
    return data


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError:
        return False


class _GunzipStream(io.RawIOBase):
    """A streaming gzip reader that says "truncated gzip stream" instead of EOFError."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._d = zlib.decompressobj(wbits=31)
        self._buf = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        while not self._buf and not self._done:
            chunk = self._raw.read(1 << 20)
            if not chunk:
                if not self._d.eof:
                    raise UnreadableFile("truncated gzip stream")
                self._done = True
                break
            try:
                self._buf = self._d.decompress(chunk)
            except zlib.error as e:
                raise UnreadableFile(f"corrupt gzip stream ({e})") from None
            if self._d.eof:
                rest = self._d.unused_data
                if rest[:2] == GZIP_MAGIC:  # another member follows
                    self._d = zlib.decompressobj(wbits=31)
                    self._buf += self._d.decompress(rest)
                elif not self._buf:
                    self._done = True
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


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, raw line without the newline) for a text file, gzipped or not.

    Streams, so a large flow-log file is never held whole; a cut gzip raises UnreadableFile after
    the lines before the cut have been yielded.
    """
    with open_binary(path) as f:
        for n, line in enumerate(f, 1):
            yield n, line.rstrip(b"\r\n")


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
