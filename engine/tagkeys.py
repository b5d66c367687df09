"""Which tag keys a bundle carries, and how to turn one of them into the owner key.

When no resource carries an owner tag under the keys the tag rules know (``team``, ``owner``...),
there is nothing to learn owners from. Most organisations do record ownership, just under their own
key (``business_unit``, ``CostCenter``, ``application``): the scan says which keys the resources
carry, how many resources carry each, and the exact option or setting that makes one the owner key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from engine.bundle import Bundle
from engine.tagrules import OWNER_KEY_ENV, TagRules, normalize_key

# Keys that describe a deployment, not an owner: never suggested (still listed).
NOT_OWNER = frozenset({
    "name", "env", "environment", "stage", "tier", "version", "created_by", "createdby", "managed_by",
    "managedby", "hidden_managedby", "region", "zone", "aws_cloudformation_stack_name",
    "aws_cloudformation_stack_id", "aws_cloudformation_logical_id", "test", "description",
})
# Parts of a key's name that suggest ownership, most telling first: the suggestion's tie-breaker.
OWNER_HINTS = ("team", "owner", "squad", "group", "unit", "department", "dept", "division", "org",
               "cost_center", "costcenter", "tribe", "project", "product", "application", "app", "service")
SHOWN = 10  # keys listed in the advice


@dataclass(frozen=True)
class TagKey:
    key: str  # the most common spelling among the resources
    resources: int  # resources that carry it (any spelling)
    values: int  # distinct values that name a team under the tag rules

    def __str__(self) -> str:
        return f"{self.key} ({self.resources} resource{'s' * (self.resources != 1)}, " \
               f"{self.values} value{'s' * (self.values != 1)})"


def tag_keys(bundle: Bundle, arns: list[str], rules: TagRules) -> list[TagKey]:
    """The tag keys on ``arns``, folded as the tag rules fold them (``org`` and `` org`` are one key),
    most carried first."""
    spellings: dict[str, Counter[str]] = {}
    carried: Counter[str] = Counter()
    values: dict[str, set[str]] = {}
    for arn in arns:
        r = bundle.resources.get(arn)
        seen: set[str] = set()
        for raw, value in ((r.tags or {}).items() if r is not None else ()):
            if not isinstance(raw, str) or not (key := normalize_key(raw)):
                continue
            spellings.setdefault(key, Counter())[raw.strip()] += 1
            if key not in seen:
                seen.add(key)
                carried[key] += 1
            team = rules.canonical(value) if isinstance(value, str) else None
            if team:
                values.setdefault(key, set()).add(team)
    out = [TagKey(spellings[k].most_common(1)[0][0], n, len(values.get(k, ()))) for k, n in carried.items()]
    return sorted(out, key=lambda t: (-t.resources, t.key.lower()))


def suggest_owner_key(keys: list[TagKey]) -> TagKey | None:
    """The key most likely to name owners: at least two team-like values, an owner-ish name, most carried."""
    def rank(t: TagKey) -> int:
        k = normalize_key(t.key)
        return next((i for i, hint in enumerate(OWNER_HINTS) if hint in k), len(OWNER_HINTS))

    cands = [t for t in keys if t.values >= 2 and normalize_key(t.key) not in NOT_OWNER]
    return min(cands, key=lambda t: (rank(t), -t.resources), default=None)


def owner_tags_advice(bundle: Bundle, arns: list[str], rules: TagRules, classes: list[str],
                      y: np.ndarray) -> str | None:
    """The summary's "missing" line about owner tags, or None when there are enough to learn from.

    Names the owner keys looked for, lists the tag keys the resources do carry (with counts), and the
    command and setting that make one of them the owner key.
    """
    tagged = int((np.asarray(y) >= 0).sum())
    if len(classes) >= 2 and tagged >= 4:
        return None
    looked_for = ", ".join(rules.keys)
    if tagged == 0:
        text = (f"owner tags: no resource has an owner tag (looked for the keys {looked_for}), "
                "so there is nothing to learn owners from.")
    else:
        text = (f"owner tags: only {tagged} resource{'s' * (tagged != 1)} in {len(classes)} "
                f"team{'s' * (len(classes) != 1)} carry an owner tag (keys {looked_for}); learning owners "
                "needs at least two teams and four tagged resources.")
    owner_keys = {normalize_key(k) for k in rules.keys}
    others = [t for t in tag_keys(bundle, arns, rules) if normalize_key(t.key) not in owner_keys]
    if others:
        listed = ", ".join(map(str, others[:SHOWN]))
        more = f", and {len(others) - SHOWN} more" if len(others) > SHOWN else ""
        best = suggest_owner_key(others)
        key = best.key if best else others[0].key
        arg = f"'{key}'" if not key.replace("_", "").replace("-", "").replace(":", "").isalnum() else key
        text += (f" The resources carry these tag keys: {listed}{more}. To make one of them the owner key, "
                 f"scan with `costdna scan --owner-key {arg}` or set {OWNER_KEY_ENV}={arg}"
                 + (f" ({key} has {best.values} distinct values)." if best else "."))
    return text + " Or tag a few resources per team, or label them with `/costdna label` in chat."
