"""Propose an account's teams from what it already says about them, for a person to confirm.

A new account has no team list. Three things in a loaded bundle name teams, each with its own noise:

- **owner tag values** (``engine.tagrules``): the strongest evidence, spelled many ways
  (``Payments Team``, ``payments-eng``), folded by the tag rules into one name;
- **IAM role (and user) names**: ``<team>-ci``, ``<team>-api``, ``svc-<team>-…``, ``gha-<team>-deploy``,
  ``team-<team>-…``. Many roles are named after a *service*, not a team (``ledger-worker``), and many are
  platform plumbing (``cloud-custodian``, ``AWSServiceRoleFor…``, ``OrganizationAccountAccessRole``) or a
  vendor's (``DatadogIntegrationRole``). A role whose name gives a known team counts for it; otherwise,
  when most of the tagged resources it acts on (CloudTrail) carry one team's tag, it counts for that team
  (its name is then a service of the team); only a role that matches neither proposes a new team, with
  low confidence;
- **IAM Identity Center permission sets**: roles ``AWSReservedSSO_<Set>_<hash>`` seen in CloudTrail or
  iam.json. ``PaymentsDevelopers`` names a team; ``PowerUserAccess`` is shared and says nothing.
  Sessions through SSO carry the person: people whose calls mostly touch one team's tagged resources
  count for that team too.

Everything here is pure over a loaded :class:`engine.bundle.Bundle`; nothing is written. The result lists
each proposed team with its evidence and counts, and the principals left out with the reason.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.tagrules import TagRules

SSO_PREFIX = "AWSReservedSSO_"

# Words a role name adds to the team's (or service's) name: what the role does, where, for what.
ROLE_WORDS = frozenset({
    "ci", "cd", "cicd", "api", "apis", "deploy", "deployer", "deployment", "deployments", "app", "apps",
    "service", "services", "svc", "worker", "workers", "job", "jobs", "infra", "runner", "role", "exec",
    "execution", "task", "tasks", "lambda", "ecs", "ec2", "eks", "k8s", "prod", "production", "staging",
    "stage", "stg", "dev", "development", "test", "testing", "qa", "sandbox", "rw", "ro", "read", "write",
    "readwrite", "consumer", "processor", "scheduler", "sync", "batch", "pipeline", "pipelines", "build",
    "builder", "release", "access", "instance", "profile", "backend", "frontend", "web", "cron", "etl",
    "function", "functions", "node", "nodes", "pod", "pods", "irsa", "oidc", "github", "gha", "gh",
    "gitlab", "circleci", "codebuild", "terraform", "tf", "cdk", "cfn", "admin", "admins", "administrator",
    "operator", "ops", "power", "poweruser", "user", "users",
})
# Prefixes before the team in a role name.
ROLE_PREFIXES = ("svc", "service", "team", "gha", "github", "gh", "gitlab", "ci", "app", "role", "iam")
# A name containing one of these words is platform automation, security or a vendor, never a team.
NOISE_WORDS = frozenset({
    "custodian", "backup", "backups", "scanner", "scan", "security", "securityhub", "hub", "guardduty",
    "inspector", "macie", "audit", "auditor", "breakglass", "break", "glass", "root", "organization", "organizations", "org", "controltower", "stackset",
    "stacksets", "config", "cloudtrail", "billing", "finops", "costdna", "datadog", "newrelic", "splunk",
    "sumologic", "sumo", "dynatrace", "wiz", "lacework", "orca", "prisma", "snyk", "crowdstrike", "vanta",
    "drata", "cloudability", "cloudhealth", "spacelift", "atlantis", "env0", "jenkins", "readonly",
    "support", "monitor", "monitoring", "logging", "logs", "vpc", "flowlogs", "sso", "saml", "okta",
    "bootstrap", "cdktoolkit", "default", "tmp", "temp",
})
# Permission-set words around a team's name ("PaymentsDevelopers", "data_platform_admins").
SSO_WORDS = frozenset({
    "developer", "developers", "dev", "devs", "engineer", "engineers", "engineering", "eng", "admin",
    "admins", "administrator", "administrators", "access", "full", "read", "only", "readonly", "write",
    "power", "poweruser", "user", "users", "team", "members", "member", "ops", "operator", "operators",
    "viewer", "viewers", "view", "prod", "production", "staging", "nonprod", "rw", "ro", "role", "sso",
    "permissions", "permission", "set", "aws",
})
# AWS's predefined job-function permission sets and other shared ones: not a team, whatever remains.
GENERIC_SETS = frozenset(s.lower() for s in (
    "AdministratorAccess", "PowerUserAccess", "ReadOnlyAccess", "ViewOnlyAccess", "Billing", "SecurityAudit",
    "DatabaseAdministrator", "DataScientist", "NetworkAdministrator", "SupportUser", "SystemAdministrator",
    "AWSAdministratorAccess", "AWSPowerUserAccess", "AWSReadOnlyAccess", "AWSOrganizationsFullAccess",
    "AWSServiceCatalogAdminFullAccess", "AWSServiceCatalogEndUserAccess", "BillingAccess", "Developer",
    "Developers", "Engineers", "ReadOnly", "Admin", "Admins", "PowerUser", "BreakGlass",
))
# Names that are AWS's own or an AWS-managed pattern.
_AWS_MANAGED = re.compile(
    r"^(AWSServiceRoleFor|AWSReservedSSO_|AWS[A-Z]|Amazon[A-Z]|aws-|OrganizationAccountAccessRole$|"
    r"AWSControlTower|stacksets-exec-|cdk-[a-z0-9]{9}-|StackSet-|OrganizationFormationRole)")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\d|\b|$)|[A-Z]?[a-z]+|\d+")
_SPLIT = re.compile(r"[-_.\s]+")

MIN_SHARE = 0.6  # a role counts for the team owning this share of the tagged resources it acts on
MIN_TAGGED = 2  # ... and at least this many of them


@dataclass
class Evidence:
    kind: str  # "tag" | "role_name" | "role_activity" | "sso" | "people"
    value: str  # the tag "key=value", the role or user name, the permission set, the people
    count: int  # resources tagged; for roles and sets, resources acted on; for people, people
    detail: str  # one sentence a person can check


@dataclass
class TeamProposal:
    team: str  # canonical name (the tag rules' spelling)
    confidence: str  # "high" | "medium" | "low"
    tagged_resources: int = 0
    tag_values: list[str] = field(default_factory=list)  # raw spellings that fold into the name
    roles: list[str] = field(default_factory=list)  # principal keys: "role:NAME" / "user:NAME"
    sso_sets: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def score(self) -> float:
        return (self.tagged_resources + 5 * len(self.roles) + 10 * len(self.sso_sets) + 2 * len(self.people))


@dataclass
class Discovery:
    teams: list[TeamProposal]
    ignored: list[tuple[str, str]]  # (principal, why it proposes no team)
    resources: int  # resources in the bundle
    tagged_resources: int  # resources whose owner tag names a team

    def team_names(self) -> list[str]:
        return [t.team for t in self.teams]

    def as_dict(self) -> dict[str, Any]:
        return {
            "teams": [{**asdict(t), "score": t.score} for t in self.teams],
            "ignored": [{"principal": p, "why": w} for p, w in self.ignored],
            "resources": self.resources,
            "tagged_resources": self.tagged_resources,
        }


# ---------------------------------------------------------------------------------------------
# names


def _words(name: str) -> list[str]:
    """Lower-case words of a name: split on ``-_.`` and on CamelCase."""
    out: list[str] = []
    for part in _SPLIT.split(name):
        if part:
            out.extend(w.lower() for w in _CAMEL.findall(part)) if not part.islower() else out.append(part)
    return [w for w in out if w]


def sso_set_of(role: str) -> str | None:
    """The permission set of an IAM Identity Center role ``AWSReservedSSO_<Set>_<hash>``, else None."""
    if not role.startswith(SSO_PREFIX):
        return None
    rest = role[len(SSO_PREFIX):]
    head, sep, tail = rest.rpartition("_")
    return head if sep and head and re.fullmatch(r"[0-9a-f]{8,}", tail) else (rest or None)


def _known_prefix(words: list[str], known: set[str], rules: TagRules) -> str | None:
    """The longest leading run of ``words`` that is a known team (``data``, ``platform`` -> data-platform)."""
    for n in range(len(words), 0, -1):
        team = rules.canonical("-".join(words[:n]))
        if team and team in known:
            return team
    return None


def team_from_role_name(name: str, known: set[str] | None = None,
                        rules: TagRules | None = None) -> tuple[str | None, str]:
    """(candidate team, why) from an IAM role or user name; (None, why not) for platform/vendor/noise names.

    ``known`` teams (from tags, permission sets) are matched first, longest first, anywhere after the
    prefixes: ``svc-data-platform-etl`` -> ``data-platform`` when that team is known.
    """
    rules = rules or TagRules.default()
    known = known or set()
    if _AWS_MANAGED.match(name):
        return None, "AWS-managed role"
    words = _words(name)
    if not words:
        return None, "no name"
    pattern = "name"
    if len(words) > 1 and words[0] in ROLE_PREFIXES:
        pattern = f"{words[0]}-<team>-…"
        words = words[1:]
    for i in range(len(words)):  # a known team anywhere in what is left
        team = _known_prefix(words[i:], known, rules)
        if team:
            return team, f"names known team {team}"
    noise = [w for w in words if w in NOISE_WORDS]
    if noise:
        return None, f"platform or vendor role ({noise[0]})"
    if "-" not in name and "_" not in name and name[:1].isupper() and len(words) > 1:
        return None, "vendor or hand-made role (CamelCase, no team pattern)"
    core = list(words)
    while len(core) > 1 and core[-1] in ROLE_WORDS:
        core.pop()
    while len(core) > 1 and core[0] in ROLE_WORDS:
        core.pop(0)
    if core == words and pattern == "name":
        return None, "no team pattern (<team>-ci, <team>-api, svc-<team>-…)"
    if pattern.startswith("svc") or pattern.startswith("service"):
        core = core[:1]  # svc-<team>-<what>: the team is the first word
    team = rules.canonical("-".join(core))
    if not team or any(w in ROLE_WORDS for w in core):
        return None, "no team left after the role words"
    return team, (pattern if pattern != "name" else f"<team>-{words[len(core)]}")


def team_from_sso_set(pset: str, rules: TagRules | None = None) -> str | None:
    """The team a permission set is named after (``PaymentsDevelopers`` -> payments), None for shared sets."""
    rules = rules or TagRules.default()
    if pset.lower() in GENERIC_SETS:
        return None
    words = [w for w in _words(pset) if w not in SSO_WORDS]
    if not words or any(w in NOISE_WORDS for w in words):
        return None
    team = rules.canonical("-".join(words))
    return team or None


# ---------------------------------------------------------------------------------------------
# discover


def _principal_names(bundle: Any) -> dict[str, str]:
    """principal key -> kind for every role and user the bundle knows (iam.json and CloudTrail)."""
    out: dict[str, str] = {}
    for key, p in bundle.principals.items():
        if key.startswith(("role:", "user:")):
            out[key] = p.kind or key.split(":", 1)[0]
    for actor in bundle.activity.actor_kinds:
        if actor.startswith(("role:", "user:")):
            out.setdefault(actor, actor.split(":", 1)[0])
    return out


def discover(bundle: Any, rules: TagRules | None = None, *, min_share: float = MIN_SHARE,
             min_tagged: int = MIN_TAGGED) -> Discovery:
    """The teams a loaded bundle suggests, best supported first; see the module docstring."""
    rules = rules or TagRules.default()
    props: dict[str, TeamProposal] = {}

    def prop(team: str) -> TeamProposal:
        p = props.get(team)
        if p is None:
            p = props[team] = TeamProposal(team=team, confidence="low")
        return p

    # 1. Owner tags.
    tagged: dict[str, str] = {}  # arn -> team
    spellings: dict[str, Counter] = defaultdict(Counter)  # team -> Counter("key=value")
    for arn, r in bundle.resources.items():
        team, key = rules.team_of(r.tags)
        if team:
            tagged[arn] = team
            spellings[team][f"{key}={r.tags[key]}"] += 1
    for team, kv in spellings.items():
        p = prop(team)
        p.tagged_resources = sum(kv.values())
        p.tag_values = sorted({s.split("=", 1)[1] for s in kv})
        for s, n in kv.most_common():
            p.evidence.append(Evidence("tag", s, n, f"{n} resource(s) tagged {s}"))

    # What each actor acts on (CloudTrail): actor -> {arn: calls}.
    acts: dict[str, Counter] = defaultdict(Counter)
    for (arn, actor, _rel), ps in bundle.activity.pairs.items():
        acts[actor][arn] += int(ps.count)

    def leaning(actor: str) -> tuple[str | None, int, int]:
        """(the team owning most of the tagged resources the actor touches, its count, tagged touched)."""
        teams = Counter(tagged[a] for a in acts.get(actor, ()) if a in tagged)
        total = sum(teams.values())
        if not teams:
            return None, 0, 0
        team, n = teams.most_common(1)[0]
        return (team if total >= min_tagged and n / total >= min_share else None), n, total

    # 2. Permission sets, before role names: a set named after a team makes that team known.
    ignored: list[tuple[str, str]] = []
    principals = _principal_names(bundle)
    sso_roles = [k for k in principals if k.startswith("role:") and sso_set_of(k[5:])]
    for key in sorted(sso_roles):
        pset = sso_set_of(key[5:]) or ""
        team = team_from_sso_set(pset, rules)
        calls, touched = sum(acts.get(key, Counter()).values()), len(acts.get(key, ()))
        if team is None:
            ignored.append((key, f"shared permission set {pset} (people of many teams)"))
            continue
        p = prop(team)
        if pset not in p.sso_sets:
            p.sso_sets.append(pset)
            p.evidence.append(Evidence("sso", pset, touched, f"permission set {pset}: {calls} call(s) on "
                                                             f"{touched} resource(s)"))

    known = set(props)
    # 3. Role and user names: a known team in the name, else the team owning most of the tagged
    # resources it acts on; then, for the rest, the team of the roles it works beside.
    later: list[tuple[str, str | None, str]] = []
    for key in sorted(principals):
        if key in sso_roles:
            continue
        name = key.split(":", 1)[1]
        team, why = team_from_role_name(name, known, rules)
        if team is None and why.startswith(("AWS-managed", "platform", "vendor")):
            ignored.append((key, why))
            continue
        touched = len(acts.get(key, ()))
        if team is not None and team in known:
            p = prop(team)
            p.roles.append(key)
            p.evidence.append(Evidence("role_name", name, touched, f"{key} is named after {team} ({why}); "
                                                                   f"acts on {touched} resource(s)"))
            continue
        lean, n, total = leaning(key)
        if lean is not None:
            p = prop(lean)
            p.roles.append(key)
            p.evidence.append(Evidence("role_activity", name, n, f"{key} acts on {total} tagged resource(s), "
                                                                 f"{n} of them tagged {lean}"))
            continue
        later.append((key, team, why))

    # Resources by the team of the roles attributed so far (a vote per role), beside the tags.
    used_by: dict[str, Counter] = defaultdict(Counter)
    for p in props.values():
        for key in p.roles:
            for arn in acts.get(key, ()):
                used_by[arn][p.team] += 1
    for key, team, why in later:
        name = key.split(":", 1)[1]
        votes = Counter()
        for arn in acts.get(key, ()):
            owner = tagged.get(arn)
            if owner is None and used_by.get(arn):
                owner = used_by[arn].most_common(1)[0][0]
            if owner is not None:
                votes[owner] += 1
        total = sum(votes.values())
        if votes:
            lean, n = votes.most_common(1)[0]
            if total >= min_tagged and n / total >= min_share:
                p = prop(lean)
                p.roles.append(key)
                p.evidence.append(Evidence("role_activity", name, n, f"{key} acts on {total} resource(s) of "
                                                                     f"known owner, {n} of them {lean}'s (tagged "
                                                                     f"or used by its roles)"))
                continue
        if team is not None:
            p = prop(team)
            p.roles.append(key)
            p.evidence.append(Evidence("role_name", name, len(acts.get(key, ())),
                                       f"{key} looks named after a team ({why}); no tag confirms it"))
            continue
        ignored.append((key, why if total == 0 else f"{why}; acts on resources of several teams"))

    # 4. People (SSO sessions, IAM users as people): who mostly works on one team's tagged resources.
    for actor in sorted(a for a in acts if a.startswith("person:")):
        lean, n, total = leaning(actor)
        if lean is not None and lean in props:
            props[lean].people.append(actor[7:])
    for p in props.values():
        if p.people:
            p.evidence.append(Evidence("people", ", ".join(p.people[:3]) + (" …" if len(p.people) > 3 else ""),
                                       len(p.people), f"{len(p.people)} person(s) whose calls mostly touch "
                                                      f"resources tagged {p.team}"))

    for p in props.values():
        kinds = {e.kind for e in p.evidence}
        named = bool(p.tagged_resources or p.sso_sets)
        if named and len(kinds) >= 2:
            p.confidence = "high"
        elif p.tagged_resources >= 3 or p.sso_sets:
            p.confidence = "medium"
        elif named:
            p.confidence = "medium" if p.tagged_resources >= 2 else "low"
        else:
            p.confidence = "low"
    rank = {"high": 0, "medium": 1, "low": 2}
    teams = sorted(props.values(), key=lambda t: (rank[t.confidence], -t.score, t.team))
    return Discovery(teams=teams, ignored=sorted(ignored), resources=len(bundle.resources),
                     tagged_resources=len(tagged))


def summary_lines(d: Discovery, limit: int | None = None) -> Iterable[str]:
    """One plain line per proposed team (for the CLI and the chat card)."""
    for t in d.teams[:limit]:
        bits = []
        if t.tagged_resources:
            bits.append(f"{t.tagged_resources} tagged resource(s) ({', '.join(t.tag_values[:3])})")
        if t.roles:
            bits.append(f"{len(t.roles)} role(s) ({', '.join(r.split(':', 1)[1] for r in t.roles[:3])})")
        if t.sso_sets:
            bits.append(f"permission set(s) {', '.join(t.sso_sets)}")
        if t.people:
            bits.append(f"{len(t.people)} people")
        yield f"{t.team} [{t.confidence}]: " + "; ".join(bits)
