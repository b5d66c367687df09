"""The business hierarchy a workspace uses: ``COSTDNA_ORG_FILE`` overlaid with its chat setting.

Two sources, lowest first: the YAML file an operator deploys (``settings.org_file``), then the
workspace's ``settings["org"]`` (``/costdna settings org …``, in ``engine.org.Org.to_dict`` shape), so a
workspace can adjust the file's units without a redeploy. The ask tools and the digest both call
:func:`org_for`, so a question about *payments-bu* and the digest's "By business unit" line agree.

A broken file or setting must never take the digest or a question down with it: it is logged (once
per file version) and ignored, and the rest of the hierarchy still applies. Lives in ``jobs`` (not
``handlers``) because the digest job needs it and jobs may not import handlers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.org import Org, OrgError

log = logging.getLogger("costdna.jobs.org")

# path -> ((mtime_ns, size), Org): the file is re-read only when it changes
_FILE_CACHE: dict[str, tuple[tuple[int, int], Org]] = {}
_MISSING = (-1, -1)


def org_from_file(path: str | Path | None) -> Org:
    """The org in the YAML file at ``path``; an empty org (and a warning) when it is missing or broken."""
    if not path:
        return Org()
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as e:
        key = str(p)
        if key not in _FILE_CACHE or _FILE_CACHE[key][0] != _MISSING:
            log.warning("COSTDNA_ORG_FILE %s cannot be read (%s); no business units from it", p, e.strerror or e)
        _FILE_CACHE[key] = (_MISSING, Org())
        return Org()
    version = (st.st_mtime_ns, st.st_size)
    cached = _FILE_CACHE.get(str(p))
    if cached is not None and cached[0] == version:
        return cached[1]
    try:
        org = Org.from_yaml(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, OrgError) as e:
        log.warning("COSTDNA_ORG_FILE %s is ignored: %s", p, e)
        org = Org()
    _FILE_CACHE[str(p)] = (version, org)
    return org


def org_of_workspace(ws: Any) -> Org:
    """The workspace's own ``settings["org"]``; an empty org (and a warning) when absent or invalid."""
    raw = ((getattr(ws, "settings", None) or {}) if ws is not None else {}).get("org")
    if not raw:
        return Org()
    try:
        return Org.from_dict(raw)
    except OrgError as e:
        log.warning("workspace %s: its org setting is ignored: %s", getattr(ws, "id", "?"), e)
        return Org()


async def org_for(s: Any, ws: Any, settings: Any) -> Org:
    """The hierarchy for workspace ``ws`` (None: the file's alone): ``settings.org_file`` overlaid with the
    workspace's setting (the workspace wins). Never raises for bad configuration.

    ``s`` (the session) is accepted so callers need not care where the org lives; today both sources are
    already loaded (the file, and ``ws.settings``)."""
    base = org_from_file(getattr(settings, "org_file", None)) if settings is not None else Org()
    own = org_of_workspace(ws)
    if own.empty:
        return base
    if base.empty:
        return own
    try:
        return base.merged(own)
    except OrgError as e:  # pragma: no cover - both sides are valid, so the merge is too
        log.warning("workspace %s: the org file and setting cannot be merged (%s); using the setting",
                    getattr(ws, "id", "?"), e)
        return own
