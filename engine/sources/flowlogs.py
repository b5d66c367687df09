"""VPC Flow Logs (text format, default version 2 or a custom field list) -> :class:`Flow`.

Flow logs are the largest source by line count, so a file is streamed line by line: split on
whitespace, pick fields by an index table computed once from the header (or the default format).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from engine.records import BundleIssue, Flow
from engine.sources.files import UnreadableFile, iter_lines, list_files

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


def read_flow_file(path: Path, issues: list[BundleIssue]) -> Iterator[Flow]:
    """Flows of one file (plain or gzip). Bad lines give an issue ("line N") and are skipped.

    NODATA/SKIPDATA records carry no traffic and are skipped silently. The file is streamed: if a
    gzip file turns out to be cut, the lines before the cut have been yielded and one issue says so.
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

    layout(list(DEFAULT_FIELDS))
    n = 0
    try:
        for n, line in iter_lines(path):
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
                issues.append(BundleIssue(where, f"line {n}", f"expected {width} fields, got {len(parts)}"))
                continue
            status = idx.get("log-status")
            if status is not None and parts[status] in _QUIET:
                continue
            src, dst = parts[idx["srcaddr"]], parts[idx["dstaddr"]]
            if src == b"-" or dst == b"-":
                continue  # no traffic recorded (NODATA without a log-status field)
            try:
                nbytes = int(parts[idx["bytes"]])
                i = idx.get("packets")
                packets = int(parts[i]) if i is not None and parts[i] != b"-" else 0
                i = idx.get("start")
                start = int(parts[i]) if i is not None and parts[i] != b"-" else 0
            except ValueError:
                issues.append(BundleIssue(where, f"line {n}", "bytes, packets or start is not a whole number"))
                continue
            i = idx.get("interface-id")
            a = idx.get("action")
            acct = idx.get("account-id")
            yield Flow(
                interface_id=parts[i].decode() if i is not None and parts[i] != b"-" else "",
                src_addr=src.decode(),
                dst_addr=dst.decode(),
                bytes=nbytes,
                packets=packets,
                start=start,
                action=parts[a].decode() if a is not None and parts[a] != b"-" else "",
                account=parts[acct].decode() if acct is not None and parts[acct] != b"-" else "",
            )
    except UnreadableFile as e:
        loc = f"line {n + 1}" if n else ""
        issues.append(BundleIssue(where, loc, f"{e}; lines before it were read"))
    except OSError as e:
        issues.append(BundleIssue(where, "", f"cannot read file ({e.strerror or e})"))
