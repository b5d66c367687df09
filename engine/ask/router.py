"""The offline router: a question in, one tool call (or a refusal, or "I can't tell") out.

No model, no network: keywords (with one-typo tolerance), the account's own names (resource ids,
ARNs, team names and their tag-rule aliases, business units), periods (``engine.periods``) and
counts decide which read-only tool answers and with which arguments. A question that asks to change
something is refused before anything else runs; a question that fits no intent gets the list of what
can be asked, never a guess.

A follow-up in the same thread passes the previous answer's ``context`` (the tool, its arguments and
what it cited), so "and last month?" re-runs the last tool over another period and "who owns the
second one?" asks about the second resource the last answer cited.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from engine.ask.facts import Facts
from engine.ask.tools import period_dict
from engine.periods import _osa_distance_le1, parse_period


@dataclass
class Plan:
    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    why: str = ""  # which words decided it (for logs and tests)
    note: str = ""  # said with the answer (a period read as of the data's end)


@dataclass
class CantTell:
    text: str


@dataclass
class Refusal:
    text: str


EXAMPLES = (
    "_top 5 spenders last month_", "_spend by team MoM_", "_spend of team payments last week_",
    "_who owns i-0abc123?_", "_why did our bill spike Tuesday?_", "_untagged spend WoW_",
    "_what fits no team?_", "_idle resources_", "_abandoned resources_", "_tag compliance_",
    "_what changed since the last scan?_", "_history of i-0abc123_", "_find payments-db_",
    "_compare payments and search_", "_summary_",
)


def cant_tell(reason: str = "") -> CantTell:
    head = reason or "I can't tell what you are asking, so I won't guess."
    return CantTell(f"{head}\nI answer questions such as: " + ", ".join(EXAMPLES) + ".")


# A request to change something. Read-only by construction: the tools cannot write, and the question
# never reaches one.
_WRITE = re.compile(
    r"^\s*(?:(?:hey|ok|okay|so|now|then)\s*,?\s+)?(?:please\s+|pls\s+|kindly\s+)?(?:(?:can|could|would|will)\s+you\s+"
    r"(?:please\s+)?|go\s+ahead\s+and\s+|i\s+want\s+you\s+to\s+|let'?s\s+|you\s+should\s+)?(?:please\s+)?"
    r"(delete|remove|terminate|stop|shut\s*down|kill|destroy|drop|tag|untag|re-?tag|label|relabel|rename|resize|"
    r"scale|downsize|modify|change|apply|reboot|restart|start|launch|create|deprovision|decommission|clean\s*up|"
    r"assign|reassign|transfer|move|mark|snooze|approve|reject|roll\s*back|revert|"
    r"purge|wipe|nuke|turn\s+off|power\s+off|set)\b(?!\s+(?:in|of|over|to|spend|cost|costs|bill|trend)\b)", re.I)
_WRITE_ANY = re.compile(r"\b(delete|terminate|shut\s*down|destroy|decommission|nuke|wipe)\b\s+(?:it|them|this|that|"
                        r"the|all|these|those|every|i-|vol-|db|arn:)", re.I)


def is_write(q: str) -> str | None:
    """The verb of a request to change something, or None."""
    m = _WRITE.search(q) or _WRITE_ANY.search(q)
    if m is None:
        return None
    verb = re.sub(r"\s+", " ", m.group(1).lower())
    # "change" as a question about change ("change in spend", "what changed") is not a request, nor is
    # "tag compliance" (however it is spelt).
    fixed = " ".join(_correct(w) for w in _words(q))
    if verb in ("change", "set", "start", "create", "label", "apply", "tag") and re.search(
            r"\b(changed|changes|since|between|compliance|compliant|coverage|policy|hygiene|over time)\b", fixed):
        return None
    return verb


def refusal(verb: str) -> Refusal:
    return Refusal(f"I can't {verb} anything: `ask` is read-only, and none of its tools can change the cloud or "
                   "costdna's records. To tag resources, `/costdna apply` proposes a tag change set that an approver "
                   "approves with a click (the previous tags are kept for rollback); `/costdna label` records who owns "
                   "a resource. Deleting, stopping or resizing is for your own tooling.")


# -- words ---------------------------------------------------------------------------------------------

_KEYWORDS = {
    # intent -> trigger words (single words; phrases are matched by regex below)
    "idle": {"idle", "unused", "zombie", "zombies", "waste", "wasted", "wasting", "underused", "underutilized"},
    "abandoned": {"abandoned", "forgotten", "orphaned", "deserted", "neglected", "silent", "dormant", "inactive"},
    "anomalies": {"anomaly", "anomalies", "anomalous", "orphan", "orphans", "misfit", "misfits", "conflict",
                  "conflicts", "conflicting", "mismatch", "mismatched", "mislabeled", "mistagged", "weird", "odd",
                  "outliers", "outlier", "suspicious"},
    "compliance": {"compliance", "compliant", "coverage", "noncompliant", "policy", "hygiene"},
    "untagged": {"untagged", "unowned", "untaged", "tagless"},
    "spike": {"spike", "spikes", "spiked", "spiking", "jump", "jumped", "surge", "surged", "increase", "increased",
              "rose", "higher", "skyrocketed", "ballooned", "grew", "blew", "explode", "exploded", "soared", "peak"},
    "history": {"history", "timeline", "happened", "events", "activity", "log", "audit", "touched", "changelog"},
    "search": {"find", "search", "lookup", "locate", "matching", "named", "containing", "grep", "list"},
    "owner": {"owns", "owner", "owned", "whose", "belongs", "belong", "responsible", "attribute", "attribution"},
    "summary": {"summary", "summarize", "summarise", "overview", "glance", "recap", "status", "overall", "report",
                "snapshot", "tldr"},
    "changed": {"changed", "drift", "drifted", "diff", "difference", "new", "appeared", "disappeared", "gone",
                "removed"},
    "compare": {"compare", "comparison", "versus", "vs", "against"},
    "top": {"top", "biggest", "largest", "most", "expensive", "highest", "costliest", "spenders", "spender",
            "priciest", "heaviest", "big", "leaderboard", "ranking", "rank", "ranked", "breakdown"},
    "spend": {"spend", "spending", "spent", "cost", "costs", "costing", "bill", "billed", "money", "much", "budget",
              "dollars", "usd", "price", "charges", "charged", "burn", "total"},
}
_VOCAB = sorted({w for ws in _KEYWORDS.values() for w in ws if len(w) >= 4} | {
    "resources", "resource", "teams", "business", "month", "week", "spenders", "untagged", "compliance"})
_STOP = {"the", "a", "an", "of", "for", "in", "on", "is", "are", "was", "were", "what", "which", "who", "how", "did",
         "do", "does", "our", "my", "we", "us", "me", "to", "and", "or", "by", "with", "from", "at", "it", "its",
         "this", "that", "these", "those", "there", "any", "all", "some", "i", "you", "can", "could", "would",
         "please", "tell", "show", "give", "hey", "hi", "so", "just", "about", "much", "many", "be", "been", "has",
         "have", "had", "why", "when", "where", "than", "then", "them", "they", "their", "costdna", "team", "teams"}

_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "fifth": 4,
             "5th": 4, "sixth": 5, "6th": 5, "seventh": 6, "7th": 6, "eighth": 7, "8th": 7, "ninth": 8, "9th": 8,
             "tenth": 9, "10th": 9, "last": -1, "top": 0}
_NUMWORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
             "ten": 10, "fifteen": 15, "twenty": 20}
_ARN = re.compile(r"arn:aws[\w-]*:[\w-]+:[\w-]*:\d*:[^\s`'\"<>,?]+", re.I)
_AWS_ID = re.compile(r"\b(?:i|vol|snap|sg|subnet|vpc|eni|nat|igw|ami|eipalloc|lt|db|elb|tgw|fs|rtb|acl)-[0-9a-z]{4,}\b",
                     re.I)
_TOP_N = re.compile(r"\b(?:top|first|biggest|largest|highest|worst)\s+(\d{1,2}|"
                    + "|".join(w for w in _NUMWORDS if w != "one") + r")\b", re.I)
_N_ITEMS = re.compile(r"\b(\d{1,2})\s+(?:biggest|largest|most|top|costliest|resources|teams|spenders)\b", re.I)
_DAYS = re.compile(r"\b(\d{1,3})\s*(?:d|days?)\b", re.I)
_FOLLOW = re.compile(r"^\s*(?:and|also|what about|how about|same for|same but|now|ok(?:ay)?|then)\b", re.I)
_REFER = re.compile(r"\b(?:the\s+)?(" + "|".join(_ORDINALS) + r")\s+(?:one|resource|item|spender|of them|on the list)\b"
                    r"|#\s?(\d{1,2})\b|\bnumber\s+(\d{1,2})\b", re.I)
_PRONOUN = re.compile(r"\b(it|its|it's|that one|this one|that resource|this resource|that|this)\b", re.I)


def _words(q: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9_.:/-]*", q.lower())


_SHORT = sorted(w for ws in _KEYWORDS.values() for w in ws if len(w) == 4)
_REAL = {"tagged", "tags", "tagging", "idea", "ideal", "side", "time", "item", "spent", "send", "life", "like", "line", "list", "lost", "most",
         "host", "cast", "case", "code", "coat", "meet", "mean", "meaning", "best", "test", "text", "next", "rest"}


def _correct(w: str) -> str:
    """A keyword within one typo of ``w`` (one edit for 5+ letters; for 4 letters, two neighbours
    swapped: "idel"), else ``w``."""
    if w in _VOCAB or w in _REAL or w in _STOP:
        return w
    if len(w) >= 5:
        hit = difflib.get_close_matches(w, _VOCAB, n=1, cutoff=0.84)
        return hit[0] if hit else w
    if len(w) == 4:
        for k in _SHORT:
            if sorted(k) == sorted(w) and sum(a != b for a, b in zip(k, w, strict=True)) == 2:
                return k
    return w


def _hits(words: set[str], intent: str) -> bool:
    return bool(words & _KEYWORDS[intent])


@dataclass
class _Q:
    raw: str
    text: str  # lower-case, mentions removed, period words removed
    words: set[str]
    period: Any  # engine.periods.Period or None
    resources: list[str]  # resource ids named, in order
    owners: list[tuple[str, str]]  # (level, name) named, in order
    n: int | None
    days: int | None
    level: str | None  # by team / unit / group
    note: str = ""  # how the period was read, when not as asked


def _resources_in(q: str, facts: Facts) -> list[str]:
    out: list[str] = []
    for m in _ARN.finditer(q):
        r = facts.resource(m.group(0))
        out.append(r.resource_id if r else m.group(0))
    for tok in re.findall(r"[`<]?([A-Za-z0-9][\w.:/@+=-]*[\w])[`>]?", q):
        if tok.lower().startswith("arn:"):
            continue
        low = tok.lower()
        r = facts.by_id.get(low)
        if r is None and low not in _STOP and low not in _VOCAB and facts.canonical_team(low) is None:
            r = facts.by_name.get(low)  # a resource's Name tag ("web-1")
        if r is not None and len(tok) >= 3:
            out.append(r.resource_id)
        elif _AWS_ID.fullmatch(tok):
            out.append(tok)
    return list(dict.fromkeys(out))


def _owners_in(text: str, facts: Facts) -> list[tuple[str, str]]:
    """Teams, units and groups named in the text, in order (exact, alias, or one typo for 5+ letters)."""
    names: dict[str, tuple[str, str]] = {}
    for t in facts.teams():
        names[t.lower()] = ("team", t)
    for alias, t in facts.aliases.items():
        names.setdefault(alias.lower(), ("team", t))
    if facts.org is not None and not facts.org.empty:
        for u in set(facts.org.units.values()):
            names.setdefault(u.lower(), ("unit", u))
        for g in set(facts.org.groups.values()):
            names.setdefault(g.lower(), ("group", g))
    found: list[tuple[int, tuple[str, str]]] = []
    for key, val in names.items():
        for m in re.finditer(r"(?<![\w-])" + re.escape(key) + r"(?![\w-])", text):
            found.append((m.start(), val))
    if not found:  # one typo in a team name of 5+ letters
        keys = [k for k in names if len(k) >= 5]
        for m in re.finditer(r"[a-z][a-z0-9_-]{4,}", text):
            w = m.group(0)
            if w in _VOCAB or w in _STOP:
                continue
            hits = [k for k in keys if _osa_distance_le1(w, k)] or difflib.get_close_matches(w, keys, n=1, cutoff=0.85)
            if len(hits) == 1 or (hits and len(set(names[h] for h in hits)) == 1):
                found.append((m.start(), names[hits[0]]))
    found.sort(key=lambda x: x[0])
    return list(dict.fromkeys(v for _, v in found))


def _period_words(raw: str, now: datetime) -> str:
    """Phrasings engine.periods does not know, in words it does: "fortnight" (two weeks), "since the
    18th" (the latest 18th not after today)."""
    raw = re.sub(r"\b(?:a|one)\s+fortnight\b|\bfortnight\b", "2 weeks", raw, flags=re.I)

    def since(m: re.Match[str]) -> str:
        day, y, mo = int(m.group(1)), now.year, now.month
        for _ in range(3):
            try:
                d = datetime(y, mo, day, tzinfo=UTC)
            except ValueError:
                d = None
            if d is not None and d.date() <= now.date():
                return f"since {d:%Y-%m-%d}"
            y, mo = (y - 1, 12) if mo == 1 else (y, mo - 1)
        return m.group(0)

    return re.sub(r"\bsince the (\d{1,2})(?:st|nd|rd|th)?\b(?!\s+(?:of\s+)?[a-z]{3,})", since, raw, flags=re.I)


def _read(question: str, facts: Facts) -> _Q:
    raw = _period_words(re.sub(r"<@[A-Z0-9]+>", " ", question).strip(), facts.now)
    end = datetime.combine(facts.data_end + timedelta(days=1), time(), UTC) if facts.data_end else None
    period, rest = parse_period(raw, facts.now, data_end=end)
    note = ""
    if period is not None and end is not None and not facts.has_days(period.start, period.end) \
            and period.start >= end:
        # The exports stopped before the period began (a paused export, a demo's fixed dates; "MoM" on
        # the 1st, before the month has a stored day): read the question as if asked on the last stored
        # day, and say so.
        anchored, rest2 = parse_period(raw, end - timedelta(microseconds=1), data_end=end)
        if anchored is not None and end - timedelta(days=1) < anchored.end < end:
            anchored = replace(anchored, end=end)  # "to date" as of the last stored day: that whole day
        if anchored is not None and facts.has_days(anchored.start, anchored.end):
            note = (f"the stored costs end on {facts.data_end}, so \"{period.label.split(' (')[0]}\" is read as of "
                    f"then: {anchored.label}")
            period, rest = anchored, rest2
    text = rest.lower()
    resources = _resources_in(raw, facts)
    scrub = text
    for rid in resources:
        scrub = scrub.replace(rid.lower(), " ")
    owners = _owners_in(scrub, facts)
    verb = re.match(r"\s*(find|search|look ?up|locate|list)\b(?!\s+(?:vs|versus|or|and|team|spend|spending|"
                    r"costs?)(?![\w=-]))|.*\b(search|find|look) for\b", scrub)
    if verb:  # "search for env=prod": the verb, even where a team is called "search"
        v = (verb.group(1) or verb.group(2) or "").replace(" ", "")
        owners = [o for o in owners if o[1].lower() != v]
    # a team called "search" or "compare" names a team, not an intent
    named = {n.lower() for _, n in owners} | {a for a, t in facts.aliases.items() if (("team", t) in owners)}
    words = {_correct(w) for w in _words(scrub) if w not in named}
    n = None
    if m := _TOP_N.search(scrub):
        v = m.group(1).lower()
        n = int(v) if v.isdigit() else _NUMWORDS[v]
    elif m := _N_ITEMS.search(scrub):
        n = int(m.group(1))
    days = None
    if m := _DAYS.search(raw.lower()):
        days = int(m.group(1))
    elif m := re.search(r"\b(a|one|two|three|four) weeks?\b", raw.lower()):
        days = 7 * {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4}[m.group(1)]
    level = None
    if re.search(r"\b(business units?|bus?|units?)\b", scrub):
        level = "unit"
    if re.search(r"\b(business groups?|bgs?|groups?|divisions?)\b", scrub):
        level = "group"
    return _Q(raw, scrub, words, period, resources, owners, n, days, level, note)


def _ordinal(q: _Q, context: dict | None) -> str | None:
    """"the second one", "#2", "it": a resource the previous answer cited."""
    cited = list((context or {}).get("citations") or [])
    if not cited:
        return None
    m = _REFER.search(q.raw)
    if m:
        i = _ORDINALS[m.group(1).lower()] if m.group(1) else int(m.group(2) or m.group(3)) - 1
        if -len(cited) <= i < len(cited):
            return cited[i]
        return None
    if _PRONOUN.search(q.raw) and len(cited) >= 1 and (context or {}).get("tool") in (
            "attribute_resource", "signal_history", "search_resources"):
        return cited[0]
    return None


def plan(question: str, facts: Facts, context: dict | None = None) -> Plan | CantTell | Refusal:
    """Which tool answers ``question`` and with which arguments."""
    if not question.strip():
        return cant_tell("Ask me something about your cloud costs.")
    verb = is_write(question)
    if verb:
        return refusal(verb)
    q = _read(question, facts)
    out = _plan(q, facts, context)
    if isinstance(out, Plan) and q.note and "period" in out.args:
        out.note = q.note
    return out


def _plan(q: _Q, facts: Facts, context: dict | None) -> Plan | CantTell | Refusal:
    w = q.words
    pd = period_dict(q.period)

    def with_period(args: dict[str, Any]) -> dict[str, Any]:
        if pd is not None:
            args["period"] = pd
        return args

    def with_n(x: Any) -> Any:
        """A plan (or arguments) with the count the question asked for ("top 3")."""
        target = x.args if isinstance(x, Plan) else x
        if q.n is not None and (not isinstance(x, Plan) or x.tool in _COUNTED):
            target["n"] = max(1, min(q.n, 50))
        return x

    ref = _ordinal(q, context)
    target = q.resources[0] if q.resources else ref
    phrase = q.text
    own_words = _hits(w, "owner") or re.search(r"\bwho (?:runs|uses|made|created|is behind)\b|\bwhich team\b", phrase)
    hist_words = _hits(w, "history") or re.search(r"\bwhat happened\b|\bwho (?:changed|touched|modified)\b|"
                                                  r"\bgoing on (?:with|to)\b|\blately\b|\brecently\b|\bstory of\b",
                                                  phrase)

    # -- about one resource (an id-like text that names none, in a search phrase, is a search)
    if target is not None and facts.resource(target) is None and (term := _search_term(q.raw, w)):
        return with_n(Plan("search_resources", {"query": term}, "search"))
    if target is not None:
        if hist_words:
            return with_n(Plan("signal_history", {"resource": target}, "history of a resource"))
        if own_words or not (w & (_KEYWORDS["spend"] | _KEYWORDS["top"] | _KEYWORDS["spike"])):
            return Plan("attribute_resource", {"resource": target}, "a resource named")
        if _hits(w, "spike"):
            return Plan("signal_history", {"resource": target}, "a resource's cost change")
        return Plan("attribute_resource", {"resource": target}, "a resource's cost")

    # -- a follow-up that only changes the period, the team or the count
    if context and context.get("tool") and (_FOLLOW.search(q.raw) or len(w - _STOP) <= 2) and not _has_intent(q):
        prev = dict(context.get("args") or {})
        tool = str(context["tool"])
        changed = False
        if pd is not None and tool in _PERIODIC:
            prev["period"], changed = pd, True
        if q.owners and tool in ("team_spend", "find_cost_spikes"):
            prev["team"], changed = q.owners[0][1], True
        if q.n is not None and tool in _COUNTED:
            prev["n"], changed = max(1, min(q.n, 50)), True
        if q.days is not None and tool in ("find_idle", "find_abandoned"):
            prev["days"], changed = max(1, min(q.days, 365)), True
        if changed:
            return Plan(tool, prev, "a follow-up")

    if re.search(r"\b(summar(?:y|ise|ize)|overview|recap|tl;? ?dr)\b", phrase) and (
            re.search(r"\b(account|bill|everything|overall|whole|cloud|estate)\b", phrase) or len(w - _STOP) <= 3):
        return Plan("summarize_account", {}, "summary")
    if re.search(r"\b(what(?:'s| has| have)? changed|since (?:the )?(?:last|previous|prior) scan|drift|between scans|"
                 r"new resources|what'?s new|diff|previous scan|last scan|prior scan|since last time|new or (?:deleted|"
                 r"removed|gone)|(?:deleted|removed|disappeared|gone) resources|owners? (?:change|changed|moved)|"
                 r"ownership (?:change|changes|changed)|changed (?:owner|owners|hands))\b", phrase):
        return with_n(Plan("what_changed", {}, "drift"))
    if re.search(r"\b(tag(?:ging)? (?:compliance|coverage|policy|hygiene)|compliance|compliant|missing (?:required )?"
                 r"tags?|required tags?)\b", phrase) or (_hits(w, "compliance") and re.search(r"\btag", phrase)):
        keys = re.findall(r"`([\w:.-]+)`", q.raw)
        return Plan("tag_compliance", {"keys": keys} if keys else {}, "tag compliance")
    if _hits(w, "abandoned") or re.search(r"\b(no longer (?:used|using|in use)|nobody (?:has )?touched|went (?:silent|"
                                          r"quiet)|stopped (?:being used|using)|stop(?:ped)? using|used to (?:be used|use|"
                                          r"touch)|(?:was|were) (?:used|active) (?:before|once|earlier))\b", phrase):
        args = with_n({})
        if q.days:
            args["days"] = q.days
        return Plan("find_abandoned", args, "abandoned")
    if _hits(w, "idle") or re.search(r"\b(not (?:being )?used|(?:nobody|no ?one|no body) (?:is |are |has )?(?:uses|using|"
                                     r"used|touches|touching|touched)|(?:haven'?t|have not|hasn'?t|has not) been (?:used|touched)|no activity|without activity|not in use|never used|sitting "
                                     r"(?:idle|unused|around))\b", phrase):
        args = with_n({})
        if q.days:
            args["days"] = q.days
        return Plan("find_idle", args, "idle")
    if _hits(w, "untagged") or re.search(r"\b(no (?:owner |team )?tags?|without (?:an? )?(?:owner |team )?tags?|"
                                         r"missing (?:owner |team )?tags?|not tagged|un-tagged|no owner tag|(?:nobody|no ?one|no-one) "
                                         r"(?:has )?tagged)\b",
                                         phrase):
        return with_n(Plan("untagged_spend", with_period({}), "untagged"))
    if _hits(w, "anomalies") or re.search(r"\b(fits? no team|no team|belongs? to no(?: team|body)|stale tags?|wrong "
                                          r"tags?|tags? (?:that )?contradict|(?:don'?t|do not|doesn'?t|does not|not) (?:look like (?:they|it) |"
                                          r"seem to |appear to )?belong to (?:any|a|one) team|tags? (?:that )?(?:look|looks|are|is|"
                                          r"seem|seems) (?:wrong|off|stale|incorrect|suspicious|weird)|mis-?tagged)\b",
                                          phrase):
        return with_n(Plan("find_anomalies", {}, "anomalies"))
    if _hits(w, "spike") or re.search(r"\b(went up|go up|gone up|bill (?:go|went) up|why (?:is|was|did) (?:the |our )?"
                                      r"(?:bill|spend|cost)|more expensive|cost more)\b", phrase):
        args = with_period({})
        if q.owners:
            args["team"] = q.owners[0][1]
        return with_n(Plan("find_cost_spikes", args, "spike"))
    if hist_words and q.owners:
        pass  # "activity of team x" reads as the team's spend below
    term = _search_term(q.raw, w)
    if term and not any(term.lower() == o[1].lower() for o in q.owners):  # "the team named payments" is a team
        return with_n(Plan("search_resources", {"query": term}, "search"))
    if _hits(w, "summary") or re.search(r"\b(how (?:are|is) (?:we|the account) doing|big picture|in a nutshell|"
                                        r"tl;? ?dr|high[- ]level|state of (?:the )?(?:account|bill|cloud))\b", phrase):
        return Plan("summarize_account", {}, "summary")

    owners = q.owners
    by_level = _by_level(phrase, q.level)
    if len(owners) >= 2 and (_hits(w, "compare") or re.search(r"\b(and|or|vs\.?|versus|than|with)\b", phrase)) \
            and not by_level:
        return Plan("compare_teams", with_period({"teams": [o[1] for o in owners]}), "compare")
    if owners and not by_level:
        level, name = owners[0]
        args = with_period({"team": name})
        if q.level and q.level != "team":
            args["level"] = q.level
        elif level != "team":
            args["level"] = level
        return Plan("team_spend", args, "an owner named")
    m = re.search(r"\bteam\s+[`\"']?([\w.-]+)", q.raw, re.I)
    if m and m.group(1).lower() not in _STOP and _correct(m.group(1).lower()) not in _VOCAB and not by_level \
            and not re.search(r"\bteams\b", phrase):
        return Plan("team_spend", with_period({"team": m.group(1)}), "an unknown team")  # says which teams exist
    m = re.search(r"\bhow much (?:does|did|do|is|was|has)\s+(?:the\s+)?([a-z][\w.-]*)\s+(?:spend|spent|cost|costing)\b"
                  r"|\b(?:spend|spending|costs?)\s+(?:of|for)\s+(?:the\s+)?([a-z][\w.-]*)\b", phrase)
    if m and not by_level:
        name = m.group(1) or m.group(2)
        if name not in _STOP and name not in _NOT_A_TEAM and _correct(name) not in _VOCAB:
            return Plan("team_spend", with_period({"team": name}), "an unknown owner")  # says which exist
    if by_level or _hits(w, "top") or _hits(w, "spend") or pd is not None:
        by = by_level or (q.level if q.level in ("unit", "group") else "team" if re.search(
            r"\bteams?\b", phrase) else "resource")  # no team named by now: "team breakdown" is every team
        return with_n(Plan("top_spenders", with_period({"by": by}), "spend"))
    if own_words:
        return cant_tell("Whose? Name a resource (its id, name or ARN), e.g. _who owns i-0abc123?_")
    return cant_tell()


_NOT_A_TEAM = {"account", "everything", "everyone", "all", "total", "aws", "cloud", "company", "org", "organisation",
               "organization", "resources", "resource", "bill", "money", "each", "every", "our", "whole", "entire",
               "it", "that", "this", "them", "us", "we", "infra", "infrastructure", "prod", "production"}
_PERIODIC = {"top_spenders", "team_spend", "compare_teams", "untagged_spend", "find_cost_spikes"}
_COUNTED = {"top_spenders", "untagged_spend", "find_anomalies", "find_idle", "find_abandoned", "search_resources",
            "find_cost_spikes", "signal_history", "what_changed"}


_NOT_TERMS = _STOP | {"resources", "resource", "all", "everything", "anything", "stuff", "things",
                      "something", "any", "every", "me", "them", "with", "named", "called", "tagged", "in"}


def _search_term(raw: str, words: set[str]) -> str | None:
    """The text a search asks for: "find payments-db", "resources named depot", "anything with relevance in
    the name", "with autocomplete in the id", "tagged env=prod"."""
    m = re.search(r"\b(?:with|having|containing|has)\s+[`'\"]?([\w.:/=@+-]{2,})[`'\"]?\s+in\s+(?:the|its|their)\s+"
                  r"(?:name|names|id|ids|arn|arns|tags?)\b", raw, re.I) or re.search(
        r"\b(?:named|called|matching|containing|tagged|labell?ed)\s+[`'\"]?([\w.:/=@+-]{2,})", raw, re.I) or re.search(
        r"\b(?:name|id|arn)s?\s+(?:contains?|containing|includes?|like|with)\s+[`'\"]?([\w.:/=@+-]{2,})", raw, re.I)
    if m and m.group(1).lower() not in _NOT_TERMS:
        return m.group(1)
    if kv := re.search(r"(?<![\w=])([\w.:-]+=[\w.:/@+-]+)", raw):  # a tag key=value: a search whatever the verb
        return kv.group(1)
    if not _hits(words, "search"):
        return None
    for m in re.finditer(r"\b(?:find|search(?: for)?|look ?up|look for|locate|list|show)\s+(?:me\s+)?(?:all\s+)?"
                         r"(?:the\s+)?(?:resources?\s+)?(?:for\s+)?[`'\"]?([\w.:/=@+-]{2,})", raw, re.I):
        if m.group(1).lower() not in _NOT_TERMS:
            return m.group(1)
    return None


def _has_intent(q: _Q) -> bool:
    w = q.words
    return any(_hits(w, k) for k in ("idle", "abandoned", "anomalies", "compliance", "untagged", "spike", "history",
                                     "search", "owner", "summary", "changed")) or bool(q.resources)


def _by_level(phrase: str, level: str | None) -> str | None:
    """"by team", "per business unit", "each BU", "across groups": the level to rank by."""
    m = re.search(r"\b(?:by|per|each|every|across|for each|for every|break(?:ing)? ?down by|split by|grouped by)\s+"
                  r"(team|teams|business units?|bus?|units?|business groups?|bgs?|groups?|divisions?)\b", phrase)
    if m is None:
        if re.search(r"\b(?:which|what) teams?\b.*\b(most|biggest|top|highest)\b|\bteams (?:spend|spending|cost)|"
                     r"\b(?:each|every|all|per) team'?s? (?:spend|spending|costs?)\b", phrase):
            return "team"
        return None
    word = m.group(1)
    if word.startswith("team"):
        return "team"
    if word.startswith(("business group", "bg", "group", "division")):
        return "group"
    return "unit"
