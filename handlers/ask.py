"""``/costdna ask <question>``: answered from stored results by the read-only tools of ``engine.ask``.

One path for every surface (slash command, mention, App Home, thread follow-up, ``costdna ask``):

1. pick the account (the workspace's, the only one, or the one the question names);
2. load its :class:`~engine.ask.facts.Facts` (the latest scan's owners, the same daily amortized costs
   the digest quotes, the watch's spikes, labels, the business hierarchy), cached while unchanged;
3. refuse a request to change anything (the tools cannot, and the question never reaches one);
4. answer offline (``engine.ask.router`` picks one tool), or, when ``OPENAI_API_KEY`` is set, let the
   LLM choose and chain the same tools (``handlers.ask_llm``), whose answer is checked against the
   tools' output and replaced by the offline one when it quotes anything they did not say.

The answer cites the resource ids it rests on and names the numbers it quotes (``Answer.figures``);
its ``context`` lets a follow-up in the same thread ("and last month?") start from it.
"""

from __future__ import annotations

import logging
import re
import time as _time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from engine.ask.answer import Answer
from engine.ask.facts import EventFact, Facts, Res, ScanSnapshot, SpikeFact
from engine.ask.router import CantTell, Plan, Refusal, plan
from engine.ask.tools import ToolError, run_tool
from handlers.cards import Card, Section
from storage import facts_repo, repo

log = logging.getLogger("costdna.ask")

CACHE_TTL_S = 600.0  # a cached Facts is checked against the database's stamp on every question anyway
_cache: dict[tuple[int, int, float], tuple[tuple, float, Facts]] = {}


async def find_prediction(s: Any, scan_id: int, ref: str) -> Any:
    """A prediction by short id or ARN (canonicalized), or None."""
    from engine.arns import canonical_arn

    ref = ref.strip().strip("`<>\"'").rstrip("?.,")
    if not ref:
        return None
    pred = await repo.prediction_for(s, scan_id, ref)
    if pred is None and ref.startswith("arn:"):
        pred = await repo.prediction_for(s, scan_id, canonical_arn(ref))
    return pred


# -- loading ---------------------------------------------------------------------------------------------


class DbStore:
    """``engine.ask.facts.Store`` over the database: read-only lookups, each in its own session."""

    def __init__(self, db: Any, account_id: int, scan_id: int, threshold: float, labels: dict[str, str]):
        self.db, self.account_id, self.scan_id, self.threshold, self.labels = db, account_id, scan_id, threshold, labels
        self._previous: ScanSnapshot | bool | None = None  # False: there is none

    async def events(self, arn: str, limit: int = 50) -> list[EventFact]:
        async with self.db.session() as s:
            rows = await facts_repo.events_for(s, self.account_id, arn, limit)
        return [EventFact(time=e.time, event_name=e.event_name, principal=e.principal, person=e.person,
                          error_code=e.error_code, event_id=e.event_id) for e in rows]

    async def previous_scan(self) -> ScanSnapshot | None:
        """The scan before this one (loaded once: this store lives as long as its cached Facts)."""
        if self._previous is not None:
            return self._previous or None
        async with self.db.session() as s:
            found = await facts_repo.previous_scan(s, self.account_id, self.scan_id)
        if found is None:
            self._previous = False
            return None
        scan, preds = found
        res = {p.arn: Res(arn=p.arn, resource_id=p.resource_id, type=p.type, team=p.team, confidence=p.confidence,
                          tag_team=p.tag_team, tag_conflict=bool(p.tag_conflict), label=self.labels.get(p.arn, ""),
                          monthly_usd=p.monthly_cost_usd) for p in preds}
        self._previous = ScanSnapshot(scan.id, scan.finished_at, res)
        return self._previous


def _activity(ev: dict | None) -> tuple[date | None, date | None, int]:
    act = (ev or {}).get("activity") or {}

    def day(v: Any) -> date | None:
        try:
            return datetime.fromisoformat(str(v)).date() if v else None
        except ValueError:
            return None

    return day(act.get("first")), day(act.get("last")), int(act.get("events") or 0)


def _aliases(settings: Any) -> dict[str, str]:
    """Tag-rule rewrites that name a team ("pay" -> payments), for reading team names in questions."""
    from engine.tagrules import TagRules

    try:
        rules = TagRules.load(settings.tag_rules) if settings is not None and settings.tag_rules else TagRules.default()
    except Exception as e:  # a broken rules file is the scan's to report; ask still answers
        log.warning("ask: tag rules unreadable (%s); no aliases", type(e).__name__)
        return {}
    out = {}
    for src, dst in (getattr(rules, "rewrites", None) or {}).items():
        team = rules.canonical(dst) if dst else None
        if team and src:
            out[str(src).strip().lower()] = team
    return out


async def load_facts(db: Any, acct: Any, scan: Any, *, threshold: float, now: datetime, settings: Any = None,
                     ws: Any = None) -> Facts:
    """The account's Facts, from the cache while the database's stamp is unchanged."""
    async with db.session() as s:
        stamp = await facts_repo.facts_stamp(s, acct.id, scan.id)
        key = (id(db), acct.id, float(threshold))
        hit = _cache.get(key)
        org = await _org(s, ws, settings)
        if hit is not None and hit[0] == stamp and _time.monotonic() - hit[1] < CACHE_TTL_S:
            facts = hit[2]
            facts.now, facts.org = now, org
            return facts
        from jobs.digest import daily_by_arn

        preds = await facts_repo.prediction_rows(s, scan.id)
        labels = await repo.current_labels(s, acct.id)
        rows = await repo.resources_by_arn(s, acct.id)
        daily, _source = await daily_by_arn(s, acct)
        from storage import watch_repo

        spikes = await watch_repo.spikes_for(s, acct.id, limit=5000)
    resources = []
    for p in preds:
        r = rows.get(p.arn)
        first, last, _n = _activity(p.evidence)
        resources.append(Res(
            arn=p.arn, resource_id=p.resource_id, type=p.type, name=(r.name if r is not None else "") or "",
            region=(r.region if r is not None else "") or "", tags=dict(r.tags or {}) if r is not None else {},
            team=p.team, confidence=float(p.confidence), runner_up=p.runner_up or "",
            runner_up_confidence=float(p.runner_up_confidence or 0.0), tag_team=p.tag_team or "",
            tag_conflict=bool(p.tag_conflict), label=labels.get(p.arn, ""), anomaly=float(p.anomaly_score or 0.0),
            monthly_usd=float(p.monthly_cost_usd or 0.0), evidence=p.evidence, first_active=first, last_active=last,
            active_days=_n))
    facts = Facts.build(
        acct.name, scan.id, resources, ((a, d, v) for a, days in daily.items() for d, v in days.items()),
        threshold=threshold, scan_finished=scan.finished_at, summary=scan.summary or {},
        spikes=[SpikeFact(id=sp.id, arn=sp.arn, resource_id=sp.resource_id, start=_aware(sp.start), end=_aware(sp.end),
                          extra_usd=float(sp.extra_usd), peak_usd_per_hour=float(sp.peak_usd_per_hour),
                          baseline_usd_per_hour=float(sp.baseline_usd_per_hour), severity=sp.severity, kind=sp.kind,
                          status=sp.status, owner_team=sp.owner_team, cause=sp.cause) for sp in spikes],
        now=now, required_tags=settings.required_tag_keys() if settings is not None else ("team",),
        aliases=_aliases(settings), org=org, store=DbStore(db, acct.id, scan.id, threshold, labels))
    _cache[key] = (stamp, _time.monotonic(), facts)
    if len(_cache) > 16:
        _cache.pop(next(iter(_cache)))
    return facts


async def _org(s: Any, ws: Any, settings: Any) -> Any:
    try:
        from jobs.org import org_for
    except ImportError:
        return None
    try:
        return await org_for(s, ws, settings)
    except Exception as e:  # never let the hierarchy stop an answer
        log.warning("ask: business hierarchy unreadable (%s)", type(e).__name__)
        return None


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


# -- answering -------------------------------------------------------------------------------------------


def _no_evidence(question: str, text: str, context: dict | None = None) -> Answer:
    return Answer(question=question, title="I can't answer that from what is stored", text=text, ok=False,
                  context=dict(context or {}))


async def _pick(s: Any, question: str, account: str | None, context: dict | None) -> tuple[Any, Answer | None]:
    accounts = await repo.list_accounts(s)
    if not accounts:
        return None, _no_evidence(question, "No account has been added or scanned yet. Run `/costdna scan` first.")
    named = account or (context or {}).get("account")
    if named:
        acct = next((a for a in accounts if a.name == named), None)
        if acct is None:
            return None, _no_evidence(question, f"There is no account named {named!r}. Accounts: "
                                      + ", ".join(a.name for a in accounts) + ".")
        return acct, None
    if len(accounts) == 1:
        return accounts[0], None
    words = set(re.findall(r"[\w.-]+", question.lower()))
    acct = next((a for a in accounts if a.name.lower() in words), None)
    if acct is None:
        return None, _no_evidence(question, "Several accounts are configured; name one in the question ("
                                  + ", ".join(a.name for a in accounts) + ").")
    return acct, None


async def run_plan(facts: Facts, question: str, p: Plan | CantTell | Refusal, context: dict | None = None) -> Answer:
    """The offline answer for a router decision."""
    keep = {"account": facts.account, **{k: v for k, v in (context or {}).items() if k in ("tool", "args", "citations")}}
    if isinstance(p, Refusal):
        return Answer(question=question, title="`ask` is read-only", text=p.text, ok=False, context=keep)
    if isinstance(p, CantTell):
        return Answer(question=question, title="I can't tell what you are asking", text=p.text, ok=False,
                      context=keep)
    try:
        res = await run_tool(facts, p.tool, p.args)
    except ToolError as e:
        return Answer(question=question, title="I can't answer that", text=str(e), tools=[p.tool], ok=False,
                      context=keep)
    note = f"answered offline by `{p.tool}` from scan #{facts.scan_id}; money is amortized cost"
    if p.note:
        note = f"{p.note}; {note}"
    return Answer(question=question, title=res.title or "Answer", text=res.text, tools=[p.tool],
                  citations=list(res.citations), figures=dict(res.figures), mode="offline", note=note, ok=res.ok,
                  context={"account": facts.account, "tool": p.tool, "args": res.args,
                           "citations": list(res.citations)[:20]})


async def ask(db: Any, question: str, *, account: str | None = None, threshold: float = 0.7,
              now: datetime | None = None, context: dict | None = None, settings: Any = None,
              ws: Any = None) -> Answer:
    """Answer one question about an account's stored results. Never raises for a user's input."""
    q = question.strip()
    now = now or datetime.now(UTC)
    async with db.session() as s:
        acct, missing = await _pick(s, q, account, context)
        if missing is not None:
            return missing
        scan = await repo.latest_predictions_scan(s, acct.id)
        if scan is None:
            return _no_evidence(q, f"{acct.name} has no finished scan yet, so there is no evidence to answer from. "
                                "Run `/costdna scan`.")
    facts = await load_facts(db, acct, scan, threshold=threshold, now=now, settings=settings, ws=ws)
    decision = plan(q, facts, context)

    async def offline() -> Answer:
        return await run_plan(facts, q, decision, context)

    key = settings.openai_api_key.get_secret_value() if settings is not None and settings.openai_api_key else ""
    if key and not isinstance(decision, Refusal):
        from handlers.ask_llm import llm_answer

        return await llm_answer(q, facts, offline=offline, api_key=key, base_url=settings.openai_base_url,
                                model=settings.llm_model, max_steps=settings.llm_max_steps,
                                timeout_s=settings.llm_timeout_s, context=context)
    return await offline()


async def answer(db: Any, question: str, **kw: Any) -> Card:
    """``ask`` as a card (the chat surfaces)."""
    return answer_card(await ask(db, question, **kw))


def answer_card(a: Answer) -> Card:
    """An answer as a card: the text, a note (how it was answered), and the ids it rests on."""
    sections = [Section(a.text)]
    if a.note:
        sections.append(Section(f"_{a.note}_"))
    if a.citations:
        ctx = "sources: " + ", ".join(f"`{c}`" for c in a.citations[:15]) + (" …" if len(a.citations) > 15 else "")
    else:
        ctx = "no resources cited: the stored results hold no evidence for this" if not a.ok else "no resources cited"
    return Card(title=a.title, sections=sections, context=ctx, kind="info")


OfflineFactory = Callable[[], Awaitable[Answer]]
