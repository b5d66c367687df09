"""Button and select clicks: ``handle_action(services, who, action_id, value) -> Reply``.

Action ids (never containing ``:``, which the Slack renderer uses to de-duplicate ids; an adapter
strips a ``:n`` suffix before calling) and their values, fields separated by ``.``:

==============  ==============================  ===========================================
action id       value                           does
==============  ==============================  ===========================================
label_team      ``prompt_id.nonce.team``        answer "who owns this?" with a team
label_other     ``prompt_id.nonce.team``        the same, from the "another team…" select
label_skip      ``prompt_id.nonce``             skip the question
cs_approve      ``change_set_id.nonce``         approve a proposed tag change set (approvers)
cs_reject       ``change_set_id.nonce``         reject it (approvers)
cs_rollback     ``change_set_id.nonce``         restore the previous tags (approvers)
spike_expected  ``spike_id.nonce``              mark a cost spike expected (the watch learns it)
spike_snooze    ``spike_id.nonce.24h|7d``       snooze a spike
spike_explain   ``spike_id.nonce``              the evidence, in the alert's thread
spike_not_ours  ``spike_id.nonce``              ask "who owns this?"; the answer re-routes the spike
spike_assign    ``spike_id.nonce.team``         (select) assign an unrouted spike to a team
==============  ==============================  ===========================================

The spike actions live in :mod:`handlers.spikes`.

The nonce is ``secrets.token_urlsafe`` (no ``.``); a team name may contain ``.`` (the value is split
at the first two). Every click is checked against the database: a forged id or nonce, an expired or
already answered question, a decided change set, or a click by someone who may not decide gets an
ephemeral note and changes nothing. What does change is audited by the repository functions.
"""

from __future__ import annotations

import logging

from handlers import spikes as spikes_mod
from handlers import views
from handlers import watch_views as wv
from handlers.cards import Card, Section, error_card
from handlers.commands import approver_ids, workspace
from handlers.context import Post, Reply, Services, Who
from jobs import control
from storage import repo

log = logging.getLogger("costdna.handlers")

LABEL_ACTIONS = (views.LABEL_TEAM, views.LABEL_OTHER)
CS_ACTIONS = (views.CS_APPROVE, views.CS_REJECT, views.CS_ROLLBACK)


def refusal(message: str, hint: str = "") -> Reply:
    return Reply(ephemeral=error_card(message, hint))


def _parse_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


async def handle_action(svc: Services, who: Who, action_id: str, value: str) -> Reply:
    base = action_id.split(":", 1)[0]  # a Slack duplicate suffix, should an adapter pass it on
    try:
        if base in LABEL_ACTIONS or base == views.LABEL_SKIP:
            return await _label(svc, who, base, value or "")
        if base in CS_ACTIONS:
            return await _change_set(svc, who, base, value or "")
        if base in wv.SPIKE_ACTIONS:
            return await spikes_mod.handle_spike_action(svc, who, base, value or "")
    except repo.NotFound as e:
        log.warning("action %s by %s refused (forged or unknown): %s", base, who.user_id, e)
        return refusal(str(e), "use the buttons costdna posted; `/costdna label` asks new questions")
    except repo.Conflict as e:  # Expired is a Conflict too
        log.info("action %s by %s refused: %s", base, who.user_id, e)
        return refusal(str(e))
    log.warning("unknown action %r by %s", action_id, who.user_id)
    return refusal(f"costdna doesn't know the button `{action_id[:60]}`.", "it may be from an older version")


async def _label(svc: Services, who: Who, action: str, value: str) -> Reply:
    skip = action == views.LABEL_SKIP
    parts = value.split(views.SEP, 1 if skip else 2)
    pid = _parse_id(parts[0]) if parts else None
    if pid is None or len(parts) != (2 if skip else 3) or not parts[1] or (not skip and not parts[2].strip()):
        log.warning("malformed label value %r from %s", value[:80], who.user_id)
        return refusal("That button's value is malformed; nothing was recorded.")
    nonce = parts[1]
    async with svc.db.session() as s:
        if skip:
            p = await repo.close_prompt(s, pid, nonce, "skipped", user=who.user_id)
            pred = await repo.prediction_for(s, p.scan_id, p.arn) if p.scan_id else None
            return Reply(replace=views.answered_prompt_card(p, pred))
        team = parts[2].strip()
        prompt = await repo.get_prompt(s, pid)
        if prompt.nonce != nonce:  # checked again (constant time) by close_prompt; here only for the team check
            raise repo.NotFound("this question is not one costdna asked (unknown or tampered button)")
        teams = await views.known_teams(s, prompt.account_id, prompt.scan_id)
        if team not in teams:
            log.warning("label with unknown team %r from %s", team[:80], who.user_id)
            return refusal(f"{team[:60]!r} is not a team costdna knows; nothing was recorded.")
        p = await repo.close_prompt(s, pid, nonce, "answered", user=who.user_id, team=team)
        await repo.add_label(s, p.account_id, p.arn, team, source="human", actor=who.user_id)
        pred = await repo.prediction_for(s, p.scan_id, p.arn) if p.scan_id else None
        card = views.answered_prompt_card(p, pred)
        account_id = p.account_id
        # a spike marked "not ours" on this resource now goes to the team just named
        rerouted = await spikes_mod.reroute_after_label(s, p.account_id, p.arn, team, who.user_id)
    # After the commit: the retrain must see the label. Debounced: a burst of answers gives one retrain.
    await control.request_retrain(svc.queue, account_id)
    return Reply(replace=card, posts=[Post(c, tracks=(spikes_mod.ROUTE, sid)) for c, sid in rerouted])


async def _change_set(svc: Services, who: Who, action: str, value: str) -> Reply:
    parts = value.split(views.SEP, 1)
    cs_id = _parse_id(parts[0]) if parts else None
    if cs_id is None or len(parts) != 2 or not parts[1]:
        log.warning("malformed change-set value %r from %s", value[:80], who.user_id)
        return refusal("That button's value is malformed; nothing was changed.")
    async with svc.db.session() as s:
        cs = await repo.check_change_set_nonce(s, cs_id, parts[1])
        ws = await workspace(s, who)
        approvers = approver_ids(ws, svc.settings)
        if not who.is_among(approvers):
            log.warning("%s %s by %s: not an approver", action, cs_id, who.user_id)
            return refusal("Only an approver can decide on tag writes; nothing was changed.",
                           "approvers: " + (", ".join(views.mention(a) for a in approvers) or "none yet"))
        account = await repo.get_account(s, cs.account_id)
        if action == views.CS_ROLLBACK:
            if cs.status not in ("applied", "failed"):
                raise repo.Conflict(f"change set #{cs_id} is {cs.status}; only written tags can be rolled back")
            await repo.audit(s, "changeset.rollback_request", actor=who.user_id, account_id=cs.account_id,
                             target=f"changeset:{cs_id}")
        else:
            to = "approved" if action == views.CS_APPROVE else "rejected"
            try:
                cs = await repo.transition_change_set(s, cs_id, to, actor=who.user_id)
            except repo.Conflict:
                by = f" by {views.mention(cs.approver)}" if cs.approver else ""
                raise repo.Conflict(f"change set #{cs_id} was already {cs.status}{by}; nothing was changed") from None
        items = await repo.change_items(s, cs_id)
        card = views.change_set_card(cs, items, account)
    if action == views.CS_REJECT:
        return Reply(replace=card)
    rollback = action == views.CS_ROLLBACK
    queued = await control.request_tag_write(svc.queue, cs_id, rollback=rollback)
    if rollback:
        text = (f"Rolling back change set #{cs_id}: restoring the previous tags, requested by {who.mention()}…"
                if queued else f"A rollback of change set #{cs_id} is already on its way.")
        return Reply(replace=Card(title=f"Rolling back tags in {account.name}…", kind="progress",
                                  sections=[Section(text)], context=f"change set #{cs_id}"))
    return Reply(replace=card)
