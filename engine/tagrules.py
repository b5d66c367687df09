"""Normalise owner tags into canonical team names.

Owner tags are the seed labels the model learns from, so every spelling of a team that survives
normalisation becomes a separate class: ``payments``, ``Payments Team`` and ``payments-eng`` would
split one team's resources three ways and teach the model that identical behaviour means three
different owners. ``TagRules`` collapses those spellings to one name, picks the owner tag among the
many keys people use (``team``, ``Owner``, CUR's ``user:team``...), and refuses values that name no
team at all (``unknown``, ``n/a``, a person's e-mail) so that they count as *unlabelled* rather than
as a bogus class.

The rules are data: a YAML file (``TagRules.load``) lets an organisation add its own keys, aliases
(``pay`` -> ``payments``) and a people map (``alice@example.com`` -> ``payments``) without code.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

DEFAULT_KEYS: tuple[str, ...] = ("team", "owner_team", "team_name", "owner", "squad", "group")
DEFAULT_PREFIXES: tuple[str, ...] = ("team-", "team_", "squad-")
DEFAULT_SUFFIXES: tuple[str, ...] = ("-team", "_team", " team", "-eng", "_eng", "-squad")
# "shared" is ignored on purpose: a resource tagged "shared" has no single owner, and training a
# class called "shared" would teach the model that mixed behaviour is a team of its own.
DEFAULT_IGNORE: tuple[str, ...] = (
    "",
    "-",
    "?",
    "unknown",
    "none",
    "null",
    "nil",
    "n/a",
    "na",
    "tbd",
    "todo",
    "shared",
    "unassigned",
    "nobody",
    "no-owner",
    "team",
    "owner",
)

# Prefixes tag *keys* carry depending on the export: CUR legacy columns ("resourceTags/user:team"),
# CUR 2.0 map keys ("user_team") and the tagging API's plain "team". They say nothing about meaning.
_KEY_PREFIXES: tuple[str, ...] = ("resourcetags/", "user:", "user_")
_YAML_FIELDS = {"keys", "rewrites", "strip_prefixes", "strip_suffixes", "ignore", "people"}

_SEP_RE = re.compile(r"[\s_]+")
_DASHES_RE = re.compile(r"-{2,}")
_KEY_SEP_RE = re.compile(r"[\s\-]+")


def _fold(value: str) -> str:
    """Unicode-fold, trim and lowercase: the comparison form every rule works on."""
    return unicodedata.normalize("NFKC", value).strip().lower()


def _clean(value: str) -> str:
    """Lowercase, trim, turn spaces/underscores into '-' and drop stray dashes at the ends."""
    v = _SEP_RE.sub("-", _fold(value))
    return _DASHES_RE.sub("-", v).strip("-")


def _clean_affix(affix: str) -> str:
    """Affixes go through the same separator folding as values, but keep their edge dash.

    ``"_team"`` and ``" team"`` both become ``"-team"``, so an affix written either way matches the
    cleaned value ``"payments-team"``.
    """
    return _DASHES_RE.sub("-", _SEP_RE.sub("-", unicodedata.normalize("NFKC", affix).lower()))


def normalize_key(key: str) -> str:
    """Canonical form of a tag *key*: lowercase, export prefixes removed, separators as '_'.

    ``Team``, ``user:team``, ``resourceTags/user:team`` and ``user_team`` all become ``team``;
    ``Team Name`` and ``team-name`` become ``team_name``.
    """
    k = _fold(key)
    changed = True
    while changed:
        changed = False
        for prefix in _KEY_PREFIXES:
            if k.startswith(prefix) and len(k) > len(prefix):
                k = k[len(prefix) :]
                changed = True
    return _KEY_SEP_RE.sub("_", k).strip("_")


@dataclass(frozen=True)
class TagRules:
    """How owner tags map to canonical team names.

    Treat an instance as immutable (derive variants with ``dataclasses.replace``): lookup tables are
    precomputed in ``__post_init__`` because ``canonical`` runs once per resource per scan.

    - ``keys``: owner tag keys in priority order; matched case-insensitively after
      ``normalize_key`` (so ``user:`` prefixes and ``-``/``_`` differences do not matter).
    - ``rewrites``: exact cleaned value -> canonical team. Checked before affixes are stripped
      (so ``{"data-eng": "data-eng"}`` protects a team whose real name ends in an affix) and again
      after. A rewrite to an ignored value (e.g. ``""``) drops the value.
    - ``strip_prefixes`` / ``strip_suffixes``: decorations removed from values, repeatedly, never
      down to an empty name.
    - ``ignore_values``: values that mean "no team".
    - ``people``: e-mail (or user name) -> team; a person in an ``owner`` tag is not a team, but
      when the organisation says whose team they are on, that is a usable label.
    """

    keys: list[str] = field(default_factory=lambda: list(DEFAULT_KEYS))
    rewrites: dict[str, str] = field(default_factory=dict)
    strip_prefixes: list[str] = field(default_factory=lambda: list(DEFAULT_PREFIXES))
    strip_suffixes: list[str] = field(default_factory=lambda: list(DEFAULT_SUFFIXES))
    ignore_values: list[str] = field(default_factory=lambda: list(DEFAULT_IGNORE))
    people: dict[str, str] = field(default_factory=dict)

    # Precomputed lookup tables (not part of the rules' identity).
    _keys: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _ignore: frozenset[str] = field(init=False, repr=False, compare=False)
    _rewrites: dict[str, str | None] = field(init=False, repr=False, compare=False)
    _people: dict[str, str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(dict.fromkeys(normalize_key(k) for k in self.keys if normalize_key(k)))
        # Longest affix first so "-team" is not stripped before a longer configured "-core-team".
        prefixes = tuple(
            sorted({p for p in map(_clean_affix, self.strip_prefixes) if p}, key=len, reverse=True)
        )
        suffixes = tuple(
            sorted({s for s in map(_clean_affix, self.strip_suffixes) if s}, key=len, reverse=True)
        )
        ignore = frozenset(_clean(v) for v in self.ignore_values)
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "_prefixes", prefixes)
        object.__setattr__(self, "_suffixes", suffixes)
        object.__setattr__(self, "_ignore", ignore)
        rewrites: dict[str, str | None] = {}
        for src, dst in self.rewrites.items():
            target = _clean(dst)
            rewrites[_clean(src)] = None if target in ignore else target
        object.__setattr__(self, "_rewrites", rewrites)
        # People map to a team name that itself goes through the value rules, so a people file
        # written with "Payments Team" agrees with tags that say "payments".
        people = {_fold(person): self._canonical_team_value(team) for person, team in self.people.items()}
        object.__setattr__(self, "_people", people)

    # ------------------------------------------------------------------ construction

    @classmethod
    def default(cls, owner_keys: Iterable[str] | None = None) -> TagRules:
        """The built-in rules: common owner keys, common affixes, common "no owner" values.

        ``owner_keys`` (default: the comma-separated ``COSTDNA_OWNER_KEY`` environment variable) are
        tried before the built-in keys: an organisation whose owner tag is ``business_unit`` says so here.
        """
        return cls().with_owner_keys(owner_keys_from_env() if owner_keys is None else owner_keys)

    def with_owner_keys(self, owner_keys: Iterable[str]) -> TagRules:
        """These rules with ``owner_keys`` tried first (before the rules' own keys); unchanged if none."""
        extra = [k for k in owner_keys if normalize_key(k)]
        if not extra:
            return self
        return replace(self, keys=[*extra, *self.keys])

    @classmethod
    def load(cls, path: str | Path) -> TagRules:
        """Read rules from YAML. Fields left out keep their defaults; a field given replaces its default.

        Raises ``ValueError`` naming the file when it is not valid YAML or a field has the wrong
        shape, because a silently ignored rules file would quietly mislabel every resource.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{p}: tag rules file is not UTF-8 text ({exc})") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: tag rules file is not valid YAML: {exc}") from exc
        if data is None:
            return cls.default()
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{p}: tag rules must be a mapping with keys {sorted(_YAML_FIELDS)}, got {type(data).__name__}"
            )
        unknown = set(data) - _YAML_FIELDS
        if unknown:
            raise ValueError(
                f"{p}: unknown tag rules field(s) {sorted(map(str, unknown))}; expected {sorted(_YAML_FIELDS)}"
            )
        kwargs: dict[str, Any] = {}
        for name, attr in (
            ("keys", "keys"),
            ("strip_prefixes", "strip_prefixes"),
            ("strip_suffixes", "strip_suffixes"),
            ("ignore", "ignore_values"),
        ):
            if name in data:
                kwargs[attr] = _str_list(data[name], p, name)
        for name in ("rewrites", "people"):
            if name in data:
                kwargs[name] = _str_map(data[name], p, name)
        if "keys" in kwargs and not any(normalize_key(k) for k in kwargs["keys"]):
            raise ValueError(f"{p}: 'keys' must name at least one owner tag key")
        return cls(**kwargs)

    # ------------------------------------------------------------------ values

    def _strip_affixes(self, v: str) -> str:
        changed = True
        while changed:
            changed = False
            for prefix in self._prefixes:
                if v.startswith(prefix) and len(v) > len(prefix):
                    v = v[len(prefix) :].strip("-")
                    changed = True
            for suffix in self._suffixes:
                if v.endswith(suffix) and len(v) > len(suffix):
                    v = v[: -len(suffix)].strip("-")
                    changed = True
        return v

    def _canonical_team_value(self, value: str) -> str | None:
        """Value rules without the people lookup (clean, rewrite, strip, rewrite, ignore)."""
        v = _clean(value)
        if v in self._ignore:
            return None
        if v in self._rewrites:
            return self._rewrites[v]
        v = self._strip_affixes(v)
        if v in self._ignore or not v:
            return None
        if v in self._rewrites:
            return self._rewrites[v]
        return v

    def canonical(self, value: str | None) -> str | None:
        """The canonical team a tag value names, or None when it names no team.

        ``"Payments Team"``, ``" payments "``, ``"team-payments"`` and ``"payments_eng"`` all give
        ``"payments"``. E-mails and ARNs are people, not teams: they give the team from ``people``
        or None.
        """
        if not isinstance(value, str):
            return None
        folded = _fold(value)
        if folded in self._people:
            return self._people[folded]
        if "@" in folded or folded.startswith("arn:"):
            return None
        return self._canonical_team_value(value)

    def team_of(self, tags: Mapping[str, str] | None) -> tuple[str | None, str | None]:
        """(team, the tag key it came from) for a resource's tags, or (None, None).

        Keys are tried in priority order; the first one whose value yields a team wins, so a resource
        tagged ``team=unknown, owner=payments`` is owned by payments. When several raw keys fold to the
        same priority key (``team`` and ``Team``), they are tried in sorted order for determinism.
        """
        if not tags:
            return None, None
        by_key: dict[str, list[str]] = {}
        for raw_key in sorted(k for k in tags if isinstance(k, str)):
            by_key.setdefault(normalize_key(raw_key), []).append(raw_key)
        for key in self._keys:
            for raw_key in by_key.get(key, ()):
                team = self.canonical(tags[raw_key])
                if team is not None:
                    return team, raw_key
        return None, None

    def known_teams(self, values: Iterable[str | None]) -> dict[str, list[str]]:
        """Canonical team -> the distinct raw spellings that collapsed into it (sorted).

        Shown to people before training ("we merged `Payments Team`, `payments-eng` into
        `payments`") so a wrong merge is caught by a human, and used to list the label classes.
        """
        teams: dict[str, set[str]] = {}
        for value in values:
            if not isinstance(value, str):
                continue
            team = self.canonical(value)
            if team is not None:
                teams.setdefault(team, set()).add(value)
        return {team: sorted(teams[team]) for team in sorted(teams)}


OWNER_KEY_ENV = "COSTDNA_OWNER_KEY"


def owner_keys_from_env() -> list[str]:
    """Owner tag keys named in ``COSTDNA_OWNER_KEY`` (comma-separated), in order; [] when unset."""
    return [k.strip() for k in os.environ.get(OWNER_KEY_ENV, "").split(",") if k.strip()]


def _str_list(value: Any, path: Path, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list):
        raise ValueError(f"{path}: '{name}' must be a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for item in value:
        if item is None:
            item = ""  # YAML "- " / "- ~": an empty value, meaningful in an ignore list
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise ValueError(f"{path}: '{name}' must be a list of strings, found {item!r}")
        out.append(str(item))
    return out


def _str_map(value: Any, path: Path, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{path}: '{name}' must be a mapping of string to string, got {type(value).__name__}"
        )
    out: dict[str, str] = {}
    for k, v in value.items():
        if v is None:
            v = ""
        for item in (k, v):
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise ValueError(f"{path}: '{name}' must map strings to strings, found {k!r}: {v!r}")
        out[str(k)] = str(v)
    return out
