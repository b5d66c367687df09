"""VPC Flow Logs (text format, default version 2 or a custom field list) -> :class:`Flow`.

Flow logs are the largest source by line count, so a file is streamed line by line: split on
whitespace, pick fields by an index table computed once from the header (or the default format).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from engine.records import BundleIssue, Flow
from engine.sources.files import MAX_LINE_BYTES, UnreadableFile, iter_text_lines, list_files

FLOWLOG_SUFFIXES = (".log", ".log.gz", ".txt", ".txt.gz")

# The default (version 2) format, in AWS's order.
DEFAULT_FIELDS = (
    "version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport", "protocol", "packets",
    "bytes", "start", "end", "action", "log-status",
)
_KNOWN = {
    *DEFAULT_FIELDS, "vpc-id", "subnet-id", "instance-id", "tcp-flags", "type", "pkt-srcaddr", "pkt-dstaddr",
    "region", "az-id", "sublocation-type", "sublocation-id", "pkt-src-aws-service", "pkt-dst-aws-service",
    "flow-direction", "traffic-path", "ecs-cluster-arn", "ecs-cluster-name", "ecs-container-instance-arn",
    "ecs-container-instance-id", "ecs-container-id", "ecs-second-container-id", "ecs-service-name",
    "ecs-task-definition-arn", "ecs-task-arn", "ecs-task-id", "reject-reason",
}
_KNOWN_BYTES = {k.encode() for k in _KNOWN} | {b"${" + k.encode() + b"}" for k in _KNOWN}
_REQUIRED = ("srcaddr", "dstaddr", "bytes")
_QUIET = {b"NODATA", b"SKIPDATA"}


def flowlog_files(bundle: Path) -> list[Path]:
    """Every flow-log file under ``bundle/flowlogs``, sorted."""
    return list_files(Path(bundle), "flowlogs", FLOWLOG_SUFFIXES)


def _header(tokens: list[bytes]) -> list[str] | None:
    """Field names when the line is a header (AWS writes one as the first line of each file)."""
    names = [t.decode("ascii", "replace").strip("${}") for t in tokens]
    if names and all(n in _KNOWN for n in names):
        return names
    return None


# Counters are unsigned 64-bit in AWS's own records; 20 digits is enough for any of them.
_MAX_DIGITS = 20
_MAX_COUNT = (1 << 64) - 1
_LATEST = 4102444800  # 2100-01-01T00:00:00Z: later flow start times are not real


def _count(tok: bytes) -> int | None:
    """A non-negative whole number as AWS writes it (digits only), else None: no sign, no
    underscores, no NaN or infinity, nothing past 64 bits."""
    if not tok.isdigit() or len(tok) > _MAX_DIGITS:
        return None
    v = int(tok)
    return v if v <= _MAX_COUNT else None


def read_flow_file(path: Path, issues: list[BundleIssue]) -> Iterator[Flow]:
    """Flows of one file (plain or gzip). Bad lines give an issue ("line N") and are skipped.

    NODATA/SKIPDATA records carry no traffic and are skipped silently. The file is streamed: if a
    gzip file turns out to be cut, the lines before the cut have been yielded and one issue says so.
    Byte and packet counts must be non-negative whole numbers and start times real epoch seconds
    (not NaN, infinity or negative); a line longer than ``MAX_LINE_BYTES`` is skipped unread. An
    empty file or binary data is one issue; UTF-16 text is transcoded, with an issue.
    """
    where = str(path)
    fields = DEFAULT_FIELDS
    idx: dict[str, int] = {}
    width = 0

    def layout(names: list[str]) -> bool:
        nonlocal fields, idx, width
        missing = [f for f in _REQUIRED if f not in names]
        if missing:
            issues.append(BundleIssue(where, "line 1", f"flow log header has no {', '.join(missing)} field"))
            return False
        fields, width = names, len(names)
        idx = {f: i for i, f in enumerate(names)}
        return True

    def bad(n: int, message: str) -> None:
        issues.append(BundleIssue(where, f"line {n}", message))

    layout(list(DEFAULT_FIELDS))
    n = 0
    try:
        for n, line in iter_text_lines(path, lambda msg: issues.append(BundleIssue(where, "", msg)), "a flow log"):
            if line is None:
                bad(n, f"longer than {MAX_LINE_BYTES} bytes; skipped")
                continue
            parts = line.split()
            if not parts:
                continue
            if n == 1 or parts[0] in _KNOWN_BYTES:
                names = _header(parts)
                if names is not None:
                    if names != fields and not layout(names):
                        return
                    continue
            if len(parts) != width:
                bad(n, f"expected {width} fields, got {len(parts)}")
                continue
            status = idx.get("log-status")
            if status is not None and parts[status] in _QUIET:
                continue
            src, dst = parts[idx["srcaddr"]], parts[idx["dstaddr"]]
            if src == b"-" or dst == b"-":
                continue  # no traffic recorded (NODATA without a log-status field)
            nbytes = _count(parts[idx["bytes"]])
            if nbytes is None:
                bad(n, f"bytes {_show(parts[idx['bytes']])} is not a whole number of bytes; line skipped")
                continue
            i = idx.get("packets")
            packets = _count(parts[i]) if i is not None and parts[i] != b"-" else 0
            if packets is None:
                bad(n, f"packets {_show(parts[i])} is not a whole number; line skipped")  # type: ignore[index]
                continue
            i = idx.get("start")
            start = _count(parts[i]) if i is not None and parts[i] != b"-" else 0
            if start is None or start >= _LATEST:
                bad(n, f"start {_show(parts[i])} is not a time in epoch seconds; line skipped")  # type: ignore[index]
                continue
            i = idx.get("interface-id")
            a = idx.get("action")
            acct = idx.get("account-id")
            try:
                flow = Flow(
                    interface_id=parts[i].decode("ascii") if i is not None and parts[i] != b"-" else "",
                    src_addr=src.decode("ascii"),
                    dst_addr=dst.decode("ascii"),
                    bytes=nbytes,
                    packets=packets,
                    start=start,
                    action=parts[a].decode("ascii") if a is not None and parts[a] != b"-" else "",
                    account=parts[acct].decode("ascii") if acct is not None and parts[acct] != b"-" else "",
                )
            except UnicodeDecodeError:
                bad(n, "a field holds bytes that are not ASCII text; line skipped")
                continue
            yield flow
    except UnreadableFile as e:
        loc = f"line {n + 1}" if n else ""
        issues.append(BundleIssue(where, loc, f"{e}; lines before it were read" if n else str(e)))
    except OSError as e:
        issues.append(BundleIssue(where, "", f"cannot read file ({e.strerror or e})"))


def _show(tok: bytes) -> str:
    """A field for a message, cut short and with odd bytes escaped."""
    text = tok[:40].decode("ascii", "backslashreplace")
    return repr(text + ("..." if len(tok) > 40 else ""))
