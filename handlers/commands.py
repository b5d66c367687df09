"""``/costdna <subcommand>``: platform-neutral, text in and a :class:`~handlers.context.Reply` out.

Subcommands: help, status, scan [account], ask <question>, owner <resource id or ARN>, teams, label [n],
apply, spikes, digest, settings (show; ``settings approvers add|remove <@U…>``; ``settings digest #channel HH``;
``settings team <team> @user… #channel``; ``settings alerts strict|audit|auto|panic|resume|#channel``;
``settings org …``). The watch's commands live in :mod:`handlers.spikes`, business units in
:mod:`handlers.org_settings`.

A bad input (unknown subcommand, bad argument, unknown resource or account) gets an ephemeral card that
says what to do, never an exception. The account a command works on is the workspace's ``account``
setting when it names one, else the only account (a synthetic ``demo`` account on first use).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from handlers import ask as ask_mod
from handlers import discover as discover_mod
from handlers import doctor as doctor_mod
from handlers import spikes as spikes_mod
from handlers import views
from handlers.cards import Card, Section, error_card
from handlers.context import Post, Reply, Services, Who
from jobs import control
from storage import repo

log = logging.getLogger("costdna.handlers")

DEFAULT_LABEL_BATCH = 3
MAX_LABEL_BATCH = 10

HELP = [
    ("`status`", "accounts, the last scan, labels and pending approvals"),
    ("`scan [account]`", "scan an account now (one scan per account at a time)"),
    ("`ask <question>`", "e.g. _top spenders_, _who owns i-0abc_, _spend of team payments_, _untagged spend_, "
                         "_what fits no team_, _why did our bill spike Tuesday_"),
    ("`owner <resource id or ARN>`", "the predicted owner, its confidence, evidence and tag"),
    ("`teams`", "teams with their resources and spend"),
    ("`label [n]`", f"answer \"who owns this?\" for the n costliest uncertain resources (default "
                    f"{DEFAULT_LABEL_BATCH})"),
    ("`apply`", "propose owner tags for confident predictions; an approver approves the write"),
    ("`spikes`", "open cost spikes with their buttons (expected, snooze, explain, not ours)"),
    ("`digest`", "post the daily digest now: spend, movers, untagged burn-down, open spikes, drift, queues"),
    ("`discover [account]`", "propose the teams from owner tags, IAM role names and SSO permission sets, to confirm"),
    ("`doctor [account]`", "check a live AWS account's access: each call costdna makes, the IAM action to add"),
    ("`accounts [add [name]]`", "list accounts; `accounts add` walks through connecting an AWS account"),
    ("`settings`", "show settings; `settings approvers add|remove @user`, `settings digest #channel HH`, "
                   "`settings team <team> @user… #channel` (who gets a team's spike alerts), "
                   "`settings alerts strict|audit|auto|panic|resume` or `settings alerts #channel`, "
                   "`settings org` (business units: `settings org unit <unit> teams <t1,t2> [group <g>]`)"),
]


def help_card(note: str = "") -> Card:
    text = "\n".join(f"• {cmd} — {what}" for cmd, what in HELP)
    sections = [Section(note)] if note else []
    sections.append(Section("*Usage:* `/costdna <subcommand>`\n" + text))
    return Card(title="costdna: who owns your cloud spend", sections=sections, ephemeral=True, kind="help",
                context="buttons on questions and change sets check who pressed them")


# -- shared by commands, actions, ask and home ----------------------------------------------------


async def workspace(s: Any, who: Who) -> Any:
    return await repo.get_or_create_workspace(s, who.platform, who.workspace)


def approver_ids(ws: Any, settings: Any) -> list[str]:
    """The workspace's approvers, with the configured ones (``COSTDNA_APPROVERS``) merged in."""
    out = list((ws.settings or {}).get("approvers") or []) if ws is not None else []
    for a in settings.approver_ids():
        if a not in out:
            out.append(a)
    return out


def account_ref(ws: Any) -> str | None:
    return (ws.settings or {}).get("account") if ws is not None else None


def threshold(settings: Any) -> float:
    return float(getattr(settings, "confidence_threshold", 0.7))


async def _account(s: Any, who: Who) -> Any:
    ws = await workspace(s, who)
    return await control.resolve_account(s, account_ref(ws))


def _no_scan(account: Any) -> Card:
    return error_card(f"{account.name} has not been scanned successfully yet, so there is nothing to show.",
                      "run `/costdna scan` first")


# -- the router -----------------------------------------------------------------------------------


async def handle_command(svc: Services, who: Who, text: str) -> Reply:
    words = (text or "").strip().split()
    if words and words[0].lstrip("/").lower() == "costdna":
        words = words[1:]
    if not words:
        return Reply.of(help_card())
    sub, args = words[0].lower(), words[1:]
    # the text after the subcommand as typed (line breaks kept: a YAML block, a multi-line question)
    raw = (text or "").strip()
    raw = re.sub(r"^/?costdna\s+", "", raw, count=1, flags=re.I)
    rest = raw[len(words[0]):].strip() if raw[:len(words[0])].lower() == words[0].lower() else " ".join(args)
    handler = COMMANDS.get(sub)
    if handler is None:
        return Reply.of(help_card(f"I don't know `{sub[:40]}`. Here is what I can do:"))
    try:
        return await handler(svc, who, args, rest)
    except repo.NotFound as e:
        log.info("command %r by %s: %s", sub, who.user_id, e)
        return Reply.of(error_card(str(e), "`/costdna status` lists the accounts"))
    except (repo.Conflict, ValueError) as e:
        log.info("command %r by %s refused: %s", sub, who.user_id, e)
        return Reply.of(error_card(str(e)))


async def cmd_help(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    return Reply.of(help_card())


async def cmd_status(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    if args:
        return Reply.of(help_card("`status` takes no arguments."))
    async with svc.db.session() as s:
        ws = await workspace(s, who)
        if not await repo.list_accounts(s):
            await control.resolve_account(s, None)  # the demo account, on first use
        report = await repo.status_report(s)
        prompts = await repo.open_prompt_count(s)
        approvers = approver_ids(ws, svc.settings)
    sections = []
    for a in report["accounts"]:
        last = a["last_scan"]
        if last is None:
            scan = "never scanned"
        elif last.get("worker_lost"):
            scan = f"#{last['id']} running: *{last['state']}* `{views.progress_bar(last['progress'])}`"
        elif last["status"] in ("queued", "running"):
            scan = f"#{last['id']} {last['status']} {last['stage']} `{views.progress_bar(last['progress'])}`"
        elif last["status"] == "failed":
            scan = f"#{last['id']} failed: {last['error']}"
        else:
            scan = (f"#{last['id']} succeeded: {last['resources']} resources, untagged "
                    f"{views.money(last['untagged_cost_usd'])}, attributable {views.money(last['attributable_cost_usd'])}")
        labels = ", ".join(f"{k} {v}" for k, v in sorted(a["labels"].items())) or "none"
        pending = a["change_sets"].get("proposed", 0)
        sections.append(Section(f"*{a['name']}* ({a['kind']}, {a['status']})", fields=[
            ("Last scan", scan), ("Labels", labels), ("Pending approvals", str(pending))]))
    sections.append(Section(f"Open questions: *{prompts}* · open alerts: {report['open_alerts']} · approvers: "
                            + (", ".join(views.mention(x) for x in approvers) or "_none yet_")))
    return Reply.of(Card(title="costdna status", sections=sections, kind="info"))


async def cmd_scan(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    if len(args) > 1:
        return Reply.of(help_card("`scan` takes at most one account name."))
    ref = args[0] if args else None
    if ref is None:
        async with svc.db.session() as s:
            ref = account_ref(await workspace(s, who))
    try:
        scan = await control.request_scan(svc.db, svc.queue, ref, requested_by=who.user_id,
                                          stale_after_s=getattr(svc.settings, "job_timeout", 3600) + 60)
    except control.ScanBusy as e:
        busy = e.scan
        card = Card(title="A scan is already on its way", kind="progress", ephemeral=True,
                    sections=[Section(f"{e}. Its card updates as it goes; ask again when it has finished.")],
                    context=f"scan #{busy.id}" if busy is not None else "")
        return Reply.of(card)
    async with svc.db.session() as s:
        account = await repo.get_account(s, scan.account_id)
        scan = await repo.get_scan(s, scan.id)
    return Reply(posts=[Post(views.scan_card(scan, account), tracks=("scan", scan.id))])


async def cmd_ask(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    """Answer a question; in a chat thread (``who.thread_ts``) it is a follow-up of the thread's previous
    answer (its stored context, until it expires). A question asked outside a thread (a slash command)
    starts one: the answer's context is stored provisionally and the posted answer becomes the thread's
    root (``tracks=("ask", id)``: the adapter attaches the message's ts, ``storage.ask_repo``)."""
    from datetime import timedelta

    from storage import ask_repo

    if not rest.strip():
        return Reply.of(help_card("`ask` needs a question, e.g. `/costdna ask top spenders`."))
    threaded = bool(who.thread_ts and who.channel_id)
    async with svc.db.session() as s:
        ws = await repo.find_workspace(s, who.platform, who.workspace)
        ref = account_ref(ws)
        ctx = await ask_repo.load_thread(s, who.platform, who.channel_id, who.thread_ts) if threaded else None
    answer = await ask_mod.ask(svc.db, rest, account=ref, threshold=threshold(svc.settings), context=ctx,
                               settings=svc.settings, ws=ws)
    card = ask_mod.answer_card(answer)
    if not who.channel_id:  # nowhere to thread (the console, the App Home)
        return Reply.of(card)
    ttl = timedelta(hours=float(getattr(svc.settings, "ask_thread_ttl_h", 24.0)))
    keep = answer.context or ctx or {}  # an answer without context leaves the thread's as it was
    try:
        async with svc.db.session() as s:
            await ask_repo.purge_expired(s)
            if threaded:
                await ask_repo.save_thread(s, who.platform, who.workspace, who.channel_id, who.thread_ts, keep,
                                           ttl, account=ref)
                return Reply.of(card)
            thread_id = await ask_repo.start_thread(s, who.platform, who.workspace, who.channel_id, keep, ttl,
                                                    account=ref)
    except Exception:  # the answer still goes out; only its follow-ups lose their context
        log.exception("ask: could not store the thread context of %s/%s", who.channel_id, who.thread_ts)
        return Reply.of(card)
    return Reply.of(card, tracks=("ask", thread_id))


async def cmd_owner(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    if len(args) != 1:
        return Reply.of(help_card("`owner` needs one resource id or ARN, e.g. `/costdna owner i-0abc123`."))
    ref = args[0].strip("<>`")
    async with svc.db.session() as s:
        account = await _account(s, who)
        scan = await repo.latest_predictions_scan(s, account.id)
        if scan is None:
            return Reply.of(_no_scan(account))
        pred = await ask_mod.find_prediction(s, scan.id, ref)
        if pred is None:
            return Reply.of(error_card(f"`{ref[:200]}` is not a resource of {account.name} in scan #{scan.id}.",
                                       "use the short id (`i-0abc…`, a bucket name) or the full ARN; "
                                       "`/costdna ask top spenders` lists some"))
        human = (await repo.current_labels(s, account.id)).get(pred.arn)
        res = (await repo.resources_by_arn(s, account.id, [pred.arn])).get(pred.arn)
    return Reply.of(owner_card(pred, human, res, threshold(svc.settings), svc.settings.tag_key))


def owner_card(pred: Any, human: str | None, res: Any, thr: float, tag_key: str) -> Card:
    guess = views.top_teams(pred)
    if pred.team:
        verdict = f"*{pred.team}* ({pred.confidence:.0%} confident" + (
            ", attributable" if pred.confidence >= thr else f", below the {thr:.0%} needed to tag") + ")"
    else:
        verdict = "_fits no team_ (its behaviour is unlike every team's)"
    fields = [("Predicted owner", verdict),
              ("Owner tag", pred.tag_team or "_none_"),
              ("Monthly cost", views.money(pred.monthly_cost_usd)),
              ("Type", pred.type or "?")]
    if pred.runner_up:
        fields.append(("Runner-up", f"{pred.runner_up} ({pred.runner_up_confidence:.0%})"))
    if human:
        fields.append(("Labeled by a person", human))
    if pred.tag_conflict:
        fields.append(("Tag conflict", f"tagged {pred.tag_team}, behaves like {pred.team}"))
    if res is not None and res.tags:
        fields.append(("Tags", ", ".join(f"{k}={v}" for k, v in sorted(res.tags.items()))[:500]))
    sections = [Section(f"`{pred.resource_id}`", fields=fields),
                Section("*Evidence*\n" + "\n".join(views._evidence_lines(pred.evidence)))]
    if guess:
        sections.append(Section("Probabilities: " + ", ".join(f"{t} {p:.0%}" for t, p in guess)))
    return Card(title=f"Who owns {pred.resource_id}?", sections=sections, context=pred.arn, kind="info")


def teams_at(preds: list[Any], thr: float) -> dict[str, dict[str, float]]:
    """The scan summary's ``teams`` (engine.scan.team_rollup, the summary's own rule) recomputed from stored
    predictions at ``thr``, with monthly cost for the scan's spend."""
    from engine.scan import team_rollup

    return team_rollup(((p.tag_team, bool(p.tag_conflict), p.team, float(p.confidence), float(p.monthly_cost_usd))
                        for p in preds), thr)


async def cmd_teams(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    thr = threshold(svc.settings)
    async with svc.db.session() as s:
        account = await _account(s, who)
        scan = await repo.latest_predictions_scan(s, account.id)
        summary = (scan.summary or {}) if scan is not None else {}
        # The scan's teams were counted at the threshold of its day; when the setting has moved since,
        # count them again from the stored predictions so `teams` agrees with apply, ask and owner.
        moved = scan is not None and abs(float(summary.get("confidence_threshold", 0.7)) - thr) > 1e-9
        preds = await repo.predictions(s, scan.id) if moved else []
    if scan is None:
        return Reply.of(_no_scan(account))
    teams = teams_at(preds, thr) if moved else (summary.get("teams") or {})
    if not teams:
        return Reply.of(Card(title=f"Teams in {account.name}", sections=[Section(
            "No team owns anything yet: no owner tags and no predictions at ≥ "
            f"{thr:.0%} confidence in the last scan.")], context=f"scan #{scan.id}"))
    per = "/mo" if moved else ""
    rows = sorted(teams.items(), key=lambda kv: -kv[1].get("cost_usd", 0.0))
    lines = [f"• *{t}*: {views.money(v.get('cost_usd'))}{per} on {int(v.get('resources', 0))} resources "
             f"({int(v.get('tagged_resources', 0))} tagged, {int(v.get('inferred_resources', 0))} inferred, "
             f"{views.money(v.get('inferred_cost_usd'))}{per} inferred)" for t, v in rows]
    lines.append(f"• _no team_: {summary.get('no_team_count', 0)} resources fit no team")
    spend = ("monthly cost (owners recounted at today's threshold; the scan used "
             f"{float(summary.get('confidence_threshold', 0.7)):.0%})") if moved else "spend over the scanned period"
    return Reply.of(Card(title=f"Teams in {account.name}", sections=[Section("\n".join(lines))],
                         context=f"scan #{scan.id} · {spend} · owners are tags, else predictions ≥ {thr:.0%}",
                         kind="summary"))


async def label_candidates(s: Any, account_id: int, scan_id: int) -> list[Any]:
    """Untagged predictions without a human label or an open question, most valuable to ask first:
    (1 - confidence) x monthly cost."""
    asked = await repo.open_prompt_arns(s, account_id)
    labeled = await repo.current_labels(s, account_id)
    preds = [p for p in await repo.predictions(s, scan_id)
             if not p.tag_team and p.arn not in labeled and p.arn not in asked]
    return sorted(preds, key=lambda p: (-(1.0 - p.confidence) * p.monthly_cost_usd, p.arn))


async def cmd_label(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    n = DEFAULT_LABEL_BATCH
    if args:
        if len(args) > 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_LABEL_BATCH:
            return Reply.of(help_card(f"`label` takes a number from 1 to {MAX_LABEL_BATCH}."))
        n = int(args[0])
    async with svc.db.session() as s:
        account = await _account(s, who)
        scan = await repo.latest_predictions_scan(s, account.id)
        if scan is None:
            return Reply.of(_no_scan(account))
        todo = (await label_candidates(s, account.id, scan.id))[:n]
        if not todo:
            return Reply.of(Card(title="Nothing to ask", sections=[Section(
                f"Every untagged resource of {account.name} has a label or an open question.")],
                context=f"scan #{scan.id}", ephemeral=True))
        prompts = await repo.create_prompts(s, account.id, [p.arn for p in todo], scan_id=scan.id,
                                            asked_by=who.user_id)
        teams = await views.known_teams(s, account.id, scan.id)
        cards = [(views.prompt_card(q, p, teams), q.id) for q, p in zip(prompts, todo, strict=True)]
    return Reply(posts=[Post(c, tracks=("prompt", pid)) for c, pid in cards])


async def cmd_apply(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    if args:
        return Reply.of(help_card("`apply` takes no arguments."))
    thr = threshold(svc.settings)
    tag_key = svc.settings.tag_key
    async with svc.db.session() as s:
        account = await _account(s, who)
        scan = await repo.latest_predictions_scan(s, account.id)
        if scan is None:
            return Reply.of(_no_scan(account))
        labeled = await repo.current_labels(s, account.id)
        pending = await repo.change_set_arns(s, account.id)
        preds = await repo.predictions(s, scan.id)
        want: dict[str, tuple[str, float, Any]] = {}
        for p in preds:
            if p.arn in pending:
                continue
            team, conf = (labeled[p.arn], 1.0) if p.arn in labeled else (p.team, p.confidence)
            if team and conf >= thr and p.tag_team != team:
                want[p.arn] = (team, conf, p)
        resources = await repo.resources_by_arn(s, account.id, list(want))
        items = []
        for arn, (team, conf, p) in sorted(want.items()):
            prev = dict(resources[arn].tags) if arn in resources else {}
            if prev.get(tag_key) == team:  # already tagged this way (since the scan)
                continue
            items.append({"arn": arn, "team": team, "confidence": conf, "monthly_cost_usd": p.monthly_cost_usd,
                          "previous_tags": prev})
        if not items:
            why = f"{len(pending)} resources already wait in a change set. " if pending else ""
            return Reply.of(Card(title="No tags to propose", kind="info", sections=[Section(
                f"No resource of {account.name} has an owner at ≥ {thr:.0%} confidence (or a person's label) "
                f"that its `{tag_key}` tag does not already say. {why}"
                "Answer more questions with `/costdna label` to raise confidence.")], context=f"scan #{scan.id}"))
        cs = await repo.propose_change_set(s, account.id, items, tag_key=tag_key, scan_id=scan.id,
                                           proposed_by=who.user_id)
        # untagged: no owner tag under any key the tag rules know (the scan's tag_team), not only tag_key
        untagged = round(sum(i["monthly_cost_usd"] for i in items if not want[i["arn"]][2].tag_team), 2)
        cs.summary = {**cs.summary, "untagged_monthly_usd": untagged}
        card = views.change_set_card(cs, await repo.change_items(s, cs.id), account)
        cs_id = cs.id
    return Reply(posts=[Post(card, tracks=("changeset", cs_id))])


_ROLE = re.compile(r"^<@&(\d+)>$")
_USER = re.compile(r"^<?@?([A-Za-z0-9._-]+)(?:\|[^>]*)?>?$")
_CHANNEL = re.compile(r"^<?#?([A-Za-z0-9._-]+)(?:\|([^>]*))?>?$")


async def cmd_settings(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    if args and args[0].lower() in ("team", "alerts"):
        return await spikes_mod.settings_watch(svc, who, args)
    if args and args[0].lower() == "org":
        from handlers.org_settings import settings_org

        return await settings_org(svc, who, args, raw=rest)
    async with svc.db.session() as s:
        ws = await workspace(s, who)
        approvers = approver_ids(ws, svc.settings)
        if not args:
            return Reply.of(settings_card(ws, approvers, svc.settings))
        what = args[0].lower()
        if what == "approvers" and len(args) == 3 and args[1].lower() in ("add", "remove"):
            role = _ROLE.match(args[2])  # a Discord role: every member holding it approves
            m = _USER.match(args[2])
            if role is None and m is None:
                return Reply.of(help_card(f"`{args[2][:40]}` is not a user; mention one, e.g. `@alice` (or a Discord "
                                          "role, `@approvers`)."))
            user = f"role:{role.group(1)}" if role is not None else m.group(1)
            if not who.is_among(approvers):
                log.info("settings: %s is not an approver", who.user_id)
                return Reply.of(error_card("Only an approver may change who approves tag writes.",
                                           "ask one of: " + (", ".join(views.mention(a) for a in approvers)
                                                             or "nobody yet: set COSTDNA_APPROVERS")))
            stored = list((ws.settings or {}).get("approvers") or [])
            if args[1].lower() == "add":
                if user not in stored:
                    stored.append(user)
            else:
                if user in svc.settings.approver_ids():
                    return Reply.of(error_card(f"{views.mention(user)} is an approver through COSTDNA_APPROVERS; "
                                               "remove them there."))
                if user not in stored:
                    return Reply.of(error_card(f"{views.mention(user)} is not an approver."))
                stored.remove(user)
                if not [a for a in stored if a] and not svc.settings.approver_ids():
                    return Reply.of(error_card("That would leave no approver; add another one first."))
            await repo.update_workspace_settings(s, ws, actor=who.user_id, approvers=stored)
            return Reply.of(settings_card(ws, approver_ids(ws, svc.settings), svc.settings, "Approvers updated."))
        if what == "digest" and len(args) == 3:
            m = _CHANNEL.match(args[1])
            if m is None or not args[2].isdigit() or not 0 <= int(args[2]) <= 23:
                return Reply.of(help_card("Use `settings digest #channel HH` with an hour from 0 to 23 (UTC)."))
            if not who.is_among(approvers):
                return Reply.of(error_card("Only an approver may change the digest."))
            await repo.update_workspace_settings(s, ws, actor=who.user_id, digest_channel=m.group(1),
                                                 digest_hour=int(args[2]))
            return Reply.of(settings_card(ws, approvers, svc.settings, "Digest updated."))
    return Reply.of(help_card("Use `settings`, `settings approvers add|remove @user`, "
                              "`settings digest #channel HH`, `settings team <team> @user… #channel` or "
                              "`settings alerts strict|audit|auto|panic|resume|#channel` or `settings org`."))


def settings_card(ws: Any, approvers: list[str], settings: Any, note: str = "") -> Card:
    st = ws.settings or {}
    channel = st.get("digest_channel")
    fields = [("Approvers", ", ".join(views.mention(a) for a in approvers) or "_none: set COSTDNA_APPROVERS_"),
              ("Daily digest", f"<#{channel}> at {int(st.get('digest_hour', 9)):02d}:00 UTC" if channel else "_off_"),
              ("Alerts channel", f"<#{st['alerts_channel']}>" if st.get("alerts_channel") else
               (f"<#{channel}> (the digest's)" if channel else "_none_")),
              ("Account", st.get("account") or "_the only one_"),
              ("Confidence to tag", f"{threshold(settings):.0%}"),
              ("Tag key", f"`{settings.tag_key}`"),
              ("Tag writes", "need an approver's click" if st.get("governance_mode", "approve") == "approve"
               else "off")]
    sections = ([Section(note)] if note else []) + [Section("", fields=fields)]
    return Card(title="costdna settings", sections=sections, ephemeral=True, kind="info")


COMMANDS = {
    "help": cmd_help,
    "status": cmd_status,
    "scan": cmd_scan,
    "ask": cmd_ask,
    "owner": cmd_owner,
    "teams": cmd_teams,
    "label": cmd_label,
    "apply": cmd_apply,
    "settings": cmd_settings,
    "spikes": spikes_mod.cmd_spikes,
    "digest": spikes_mod.cmd_digest,
    "discover": discover_mod.cmd_discover,
    "doctor": doctor_mod.cmd_doctor,
    "accounts": doctor_mod.cmd_accounts,
}
