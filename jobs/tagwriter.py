"""Writing owner tags back to where an account's tags live.

A synthetic or bundle account keeps its tags in the bundle's ``resources.json`` (the tagging API's
own ``get-resources`` output), so a write lands exactly where the next scan reads tags from, as it
would in a real account. Writes replace the file atomically (temp file + rename): a crash leaves the
old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.arns import canonical_arn


class TagWriteError(RuntimeError):
    """The whole write failed (the file is unreadable); per-resource failures are returned instead."""


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"ResourceTagMappingList": []}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TagWriteError(f"{path}: cannot read the tag inventory ({e})") from e
    if isinstance(doc, list):  # pages written as a list: merged into one response
        doc = {"ResourceTagMappingList": [m for page in doc for m in page.get("ResourceTagMappingList", [])]}
    if not isinstance(doc, dict) or not isinstance(doc.get("ResourceTagMappingList", []), list):
        raise TagWriteError(f"{path}: not a get-resources response")
    doc.setdefault("ResourceTagMappingList", [])
    return doc


class BundleTagWriter:
    def __init__(self, bundle_dir: Path | str):
        self.path = Path(bundle_dir) / "resources.json"

    def read(self) -> dict[str, dict[str, str]]:
        """arn -> tags, as the tagging API would list them."""
        doc = _load(self.path)
        return {canonical_arn(m.get("ResourceARN", "")): {t["Key"]: t["Value"] for t in m.get("Tags", [])}
                for m in doc["ResourceTagMappingList"] if m.get("ResourceARN")}

    def write(self, tags: dict[str, dict[str, str]]) -> dict[str, str]:
        """Set each resource's complete tag set (``arn -> tags``); returns ``arn -> error`` for failures.

        Resources not yet in the file are added (the tagging API lists a resource once it has tags).
        """
        doc = _load(self.path)
        entries = {canonical_arn(m.get("ResourceARN", "")): m for m in doc["ResourceTagMappingList"]
                   if m.get("ResourceARN")}
        errors: dict[str, str] = {}
        for arn, new in tags.items():
            if not arn.startswith("arn:"):
                errors[arn] = "not an ARN"
                continue
            entry = entries.get(canonical_arn(arn))
            if entry is None:
                entry = {"ResourceARN": arn, "Tags": []}
                doc["ResourceTagMappingList"].append(entry)
                entries[canonical_arn(arn)] = entry
            entry["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(new.items())]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".resources.", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return errors
