"""The business hierarchy: teams roll up into business units, business units into business groups.

A FinOps review rarely stops at teams: finance asks what *payments-bu* or *commerce* spent, and a
business unit is a set of teams that changes far less often than the teams' resources do. So the
hierarchy is data, not tags on every resource: a small YAML mapping (``COSTDNA_ORG_FILE``) and/or a
workspace setting (``/costdna settings org …``), with resource tags such as ``business_unit`` as the
exception that overrides it for one resource (a shared team's resource that one unit pays for).

::

    business_units:
      payments-bu:
        group: commerce
        teams: [payments, checkout]
      platform-bu:
        group: engineering
        teams: [platform, data]

Names keep the spelling they were written with (that is what people read back) but are looked up
case-insensitively, because people type ``Payments-BU`` in chat. Tag keys are compared in
``engine.tagrules.normalize_key`` form, so ``BusinessUnit``, ``user:business_unit`` and
``business-unit`` are all the same key. Pure: no I/O but the YAML text it is handed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.tagrules import normalize_key

NO_UNIT = "(no unit)"
NO_GROUP = "(no group)"
LEVELS = ("team", "unit", "group")
DEFAULT_UNIT_KEYS: tuple[str, ...] = ("business_unit", "businessunit", "bu")
DEFAULT_GROUP_KEYS: tuple[str, ...] = ("business_group", "businessgroup", "bg")
_TOP_KEYS = {"business_units", "unit_keys", "group_keys"}
_UNIT_KEYS = {"group", "teams"}
_LEVEL_ALIASES = {"team": "team", "teams": "team", "unit": "unit", "units": "unit", "business_unit": "unit",
                  "bu": "unit", "group": "group", "groups": "group", "business_group": "group", "bg": "group"}


class OrgError(ValueError):
    """The hierarchy cannot be read: the message says what and where, for a person to fix."""


def fold(name: str) -> str:
    """The comparison form of a name: NFKC, trimmed, case-folded (``Payments-BU`` == ``payments-bu``)."""
    return unicodedata.normalize("NFKC", name).strip().casefold()


def _name(value: Any, what: str) -> str:
    """A name as written, trimmed; non-text or empty values are refused with a message saying which.

    YAML turns unquoted ``123``, ``yes`` or ``null`` into a number, a boolean or nothing: a unit called
    ``True`` is always a typo, so it is an error rather than silently stringified."""
    if not isinstance(value, str):
        raise OrgError(f"{what} must be text, got {value!r} ({type(value).__name__}); quote it in the YAML")
    v = unicodedata.normalize("NFKC", value).strip()
    if not v:
        raise OrgError(f"{what} is empty")
    return v


def _keys(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise OrgError(f"{what} must be a list of tag keys")
    return tuple(dict.fromkeys(normalize_key(_name(k, f"a key in {what}")) for k in value))


@dataclass(frozen=True)
class Org:
    """Team -> business unit -> business group, plus the resource tag keys that override it.

    Treat an instance as immutable (``merged`` and ``from_dict`` make new ones): the case-insensitive
    lookup tables are built once in ``__post_init__`` because ``unit`` runs once per resource.

    - ``units``: team -> business unit (a team is in at most one unit: a dict cannot say otherwise);
    - ``groups``: business unit -> business group (a unit may have none);
    - ``unit_keys`` / ``group_keys``: resource tag keys (compared normalized) whose value names the
      resource's unit / group and wins over its team's.
    """

    units: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    unit_keys: tuple[str, ...] = DEFAULT_UNIT_KEYS
    group_keys: tuple[str, ...] = DEFAULT_GROUP_KEYS
    _team_ix: dict[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)
    _unit_ix: dict[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)
    _group_ix: dict[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)
    _ukeys: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())
    _gkeys: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        units: dict[str, str] = {}
        team_ix: dict[str, str] = {}  # folded team -> its unit (as written)
        unit_ix: dict[str, str] = {}  # folded unit -> unit as written (first spelling wins)
        for team, unit in self.units.items():
            t, u = _name(team, "a team name"), _name(unit, f"the business unit of team {team!r}")
            if fold(t) in team_ix:
                raise OrgError(f"team {t!r} is listed twice (names are case-insensitive)")
            u = unit_ix.setdefault(fold(u), u)
            team_ix[fold(t)] = u
            units[t] = u
        groups: dict[str, str] = {}
        group_ix: dict[str, str] = {}
        for unit, group in self.groups.items():
            u = _name(unit, "a business unit name")
            g = _name(group, f"the business group of unit {unit!r}") if group not in (None, "") else ""
            if fold(u) in {fold(x) for x in groups}:
                raise OrgError(f"business unit {u!r} is given a group twice (names are case-insensitive)")
            u = unit_ix.setdefault(fold(u), u)
            if g:
                g = group_ix.setdefault(fold(g), g)
                groups[u] = g
        set_ = object.__setattr__
        set_(self, "units", units)
        set_(self, "groups", groups)
        set_(self, "unit_keys", _keys(self.unit_keys, "unit_keys"))
        set_(self, "group_keys", _keys(self.group_keys, "group_keys"))
        set_(self, "_team_ix", team_ix)
        set_(self, "_unit_ix", unit_ix)
        set_(self, "_group_ix", group_ix)
        set_(self, "_ukeys", frozenset(self.unit_keys))
        set_(self, "_gkeys", frozenset(self.group_keys))

    # -- lookups ------------------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        """Nothing configured: callers skip the roll-up altogether (no "(no unit)" noise)."""
        return not self.units and not self.groups

    def unit_names(self) -> list[str]:
        """Every business unit, as written, in order of first mention."""
        return list(dict.fromkeys([*self.units.values(), *self.groups]))

    def group_names(self) -> list[str]:
        return list(dict.fromkeys(self.groups.values()))

    def _tag(self, tags: Mapping[str, Any] | None, keys: frozenset[str]) -> str:
        for k, v in (tags or {}).items():
            if isinstance(k, str) and isinstance(v, str) and v.strip() and normalize_key(k) in keys:
                return unicodedata.normalize("NFKC", v).strip()
        return ""

    def unit(self, team: str, tags: Mapping[str, Any] | None = None) -> str:
        """The business unit of a resource of ``team``; "" when unknown. A unit tag on the resource wins
        (spelled as configured when it names a known unit)."""
        tagged = self._tag(tags, self._ukeys)
        if tagged:
            return self._unit_ix.get(fold(tagged), tagged)
        return self._team_ix.get(fold(team or ""), "") if team else ""

    def group(self, team: str, tags: Mapping[str, Any] | None = None) -> str:
        """The business group of a resource of ``team``: a group tag wins, else its unit's group (the
        unit itself may come from a tag); "" when unknown."""
        tagged = self._tag(tags, self._gkeys)
        if tagged:
            return self._group_ix.get(fold(tagged), tagged)
        unit = self.unit(team, tags)
        return self.group_of_unit(unit) if unit else ""

    def group_of_unit(self, unit: str) -> str:
        canon = self._unit_ix.get(fold(unit or ""), "")
        return self.groups.get(canon, "") if canon else ""

    def level_of(self, name: str) -> tuple[str, str] | None:
        """``("unit", "payments-bu")`` or ``("group", "commerce")`` for a name typed in any case; None when
        it names neither (a team, or nothing). A name that is both is taken as the unit (the finer one)."""
        f = fold(name or "")
        if f in self._unit_ix:
            return "unit", self._unit_ix[f]
        if f in self._group_ix:
            return "group", self._group_ix[f]
        return None

    def teams_in(self, level: str, name: str) -> set[str]:
        """The configured teams of a unit or group (as written); empty when it has none or is unknown.
        Resources that join a unit by tag are not here: they are found per resource with ``unit``."""
        lv = _level(level)
        f = fold(name or "")
        if lv == "team":
            return {t for t in self.units if fold(t) == f}
        if lv == "unit":
            return {t for t, u in self.units.items() if fold(u) == f}
        return {t for t, u in self.units.items() if fold(self.groups.get(u, "")) == f}

    # -- (de)serialisation --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The YAML shape as plain data (JSON-able: what the workspace setting stores)."""
        bus: dict[str, Any] = {}
        for unit in self.unit_names():
            entry: dict[str, Any] = {}
            if self.groups.get(unit):
                entry["group"] = self.groups[unit]
            entry["teams"] = [t for t, u in self.units.items() if u == unit]
            bus[unit] = entry
        out: dict[str, Any] = {"business_units": bus}
        if self.unit_keys != DEFAULT_UNIT_KEYS:
            out["unit_keys"] = list(self.unit_keys)
        if self.group_keys != DEFAULT_GROUP_KEYS:
            out["group_keys"] = list(self.group_keys)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=None)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Org:
        """Validate the YAML shape; raise :class:`OrgError` naming the unit or team at fault.

        Errors rather than guesses: a team in two units would count its spend twice (or in whichever unit
        came last), and a unit without teams is a typo that silently rolls nothing up."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise OrgError(f"the org must be a mapping with a `business_units:` key, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _TOP_KEYS)
        if unknown:
            raise OrgError(f"unknown key(s) {', '.join(unknown)}: expected `business_units:` "
                           "(and optionally `unit_keys:` / `group_keys:`)")
        bus = d.get("business_units")
        if bus is None:
            bus = {}
        if not isinstance(bus, Mapping):
            raise OrgError("`business_units:` must map each business unit to its `group:` and `teams:`")
        units: dict[str, str] = {}
        groups: dict[str, str] = {}
        where: dict[str, str] = {}  # folded team -> unit, for the "two units" message
        seen_units: dict[str, str] = {}
        for raw_unit, spec in bus.items():
            unit = _name(raw_unit, "a business unit name")
            if fold(unit) in seen_units:
                raise OrgError(f"business unit {unit!r} is defined twice (as {seen_units[fold(unit)]!r}; "
                               "names are case-insensitive)")
            seen_units[fold(unit)] = unit
            if isinstance(spec, list | str):
                spec = {"teams": spec}
            if spec is None:
                spec = {}
            if not isinstance(spec, Mapping):
                raise OrgError(f"business unit {unit!r}: expected `group:` and `teams:`, got {spec!r}")
            bad = sorted(str(k) for k in spec if k not in _UNIT_KEYS)
            if bad:
                raise OrgError(f"business unit {unit!r}: unknown key(s) {', '.join(bad)} "
                               "(expected `group:` and `teams:`)")
            teams = spec.get("teams")
            if isinstance(teams, str):
                teams = [t for t in (x.strip() for x in teams.split(",")) if t]
            if teams is None or (isinstance(teams, list) and not teams):
                raise OrgError(f"business unit {unit!r} has no teams: list them under `teams:`")
            if not isinstance(teams, list):
                raise OrgError(f"business unit {unit!r}: `teams:` must be a list of team names")
            for raw_team in teams:
                team = _name(raw_team, f"a team of business unit {unit!r}")
                prev = where.get(fold(team))
                if prev is not None and fold(prev) != fold(unit):
                    raise OrgError(f"team {team!r} is in two business units: {prev!r} and {unit!r}; "
                                   "a team belongs to one unit (tag single resources with `business_unit` "
                                   "instead)")
                if prev is None:
                    where[fold(team)] = unit
                    units[team] = unit
            group = spec.get("group")
            if group is not None:
                groups[unit] = _name(group, f"the group of business unit {unit!r}")
        return cls(units=units, groups=groups,
                   unit_keys=_keys(d["unit_keys"], "unit_keys") if d.get("unit_keys") is not None
                   else DEFAULT_UNIT_KEYS,
                   group_keys=_keys(d["group_keys"], "group_keys") if d.get("group_keys") is not None
                   else DEFAULT_GROUP_KEYS)

    @classmethod
    def from_yaml(cls, text: str) -> Org:
        """Parse the YAML mapping (``yaml.safe_load``: no tags, no code); empty text is an empty org."""
        try:
            data = yaml.safe_load(text or "")
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise OrgError(f"the org YAML is malformed{where}: {problem}") from None
        return cls.from_dict(data)

    def merged(self, other: Org) -> Org:
        """This org overlaid with ``other`` (which wins): a unit ``other`` defines takes exactly the teams
        ``other`` lists (a team ``other`` moves leaves its old unit), its group if ``other`` gives one;
        units only this org defines stay, minus teams taken by ``other``; a unit left without teams
        goes. Tag keys: ``other``'s when it sets its own."""
        theirs = {fold(u) for u in other.unit_names()}
        taken = {fold(t) for t in other.units}
        units = {t: u for t, u in self.units.items() if fold(u) not in theirs and fold(t) not in taken}
        units.update(other.units)
        alive = {fold(u) for u in units.values()}
        groups = {u: g for u, g in self.groups.items() if fold(u) in alive}
        for u, g in other.groups.items():
            groups = {k: v for k, v in groups.items() if fold(k) != fold(u)}
            groups[u] = g
        return Org(units=units, groups=groups,
                   unit_keys=other.unit_keys if other.unit_keys != DEFAULT_UNIT_KEYS else self.unit_keys,
                   group_keys=other.group_keys if other.group_keys != DEFAULT_GROUP_KEYS else self.group_keys)

    def with_unit(self, unit: str, teams: Iterable[str], group: str | None = None) -> Org:
        """This org with one unit set to exactly ``teams`` (moved out of any other unit); ``group`` None
        keeps the unit's current group. Raises :class:`OrgError` on an empty team list."""
        unit = _name(unit, "the business unit name")
        names = [_name(t, f"a team of business unit {unit!r}") for t in teams]
        if not names:
            raise OrgError(f"business unit {unit!r} has no teams")
        g = self.group_of_unit(unit) if group is None else _name(group, f"the group of business unit {unit!r}")
        canon = self._unit_ix.get(fold(unit), unit)
        return self.merged(Org(units={t: canon for t in names}, groups={canon: g} if g else {}))

    def without_unit(self, unit: str) -> Org:
        """This org without ``unit`` (its teams become unit-less)."""
        f = fold(unit or "")
        return Org(units={t: u for t, u in self.units.items() if fold(u) != f},
                   groups={u: g for u, g in self.groups.items() if fold(u) != f},
                   unit_keys=self.unit_keys, group_keys=self.group_keys)


def _level(level: str) -> str:
    lv = _LEVEL_ALIASES.get((level or "").strip().lower())
    if lv is None:
        raise OrgError(f"unknown level {level!r}: use team, unit or group")
    return lv


def bucket(org: Org, level: str, team: str, tags: Mapping[str, Any] | None = None) -> str:
    """The name one resource (of ``team``, with ``tags``) is counted under at ``level``; unknowns go to
    ``(no unit)`` / ``(no group)`` (``team`` level: the team itself, ``(no team)`` when empty)."""
    lv = _level(level)
    if lv == "team":
        return team or "(no team)"
    if lv == "unit":
        return org.unit(team, tags) or NO_UNIT
    return org.group(team, tags) or NO_GROUP


def rollup_items(items: Iterable[tuple[str, Mapping[str, Any] | None, float]], org: Org,
                 level: str) -> dict[str, float]:
    """Per-resource ``(team, tags, usd)`` -> spend per unit / group, resource tags overriding the team's
    unit. Every dollar lands in exactly one bucket, so the buckets sum to the input's total."""
    lv = _level(level)
    out: dict[str, float] = {}
    for team, tags, usd in items:
        k = bucket(org, lv, team, tags)
        out[k] = out.get(k, 0.0) + float(usd)
    return out


def rollup(spend: Mapping[str, float], org: Org, level: str) -> dict[str, float]:
    """Team spend -> business-unit (``level="unit"``) or business-group (``"group"``) spend.

    Teams in no unit are summed under ``(no unit)`` / ``(no group)`` rather than dropped, so a
    roll-up always adds up to the same total as the spend by team it came from (finance reconciles
    the two)."""
    return rollup_items(((team, None, usd) for team, usd in spend.items()), org, level)
