"""The watch in chat: ``/costdna spikes``, ``/costdna digest``, ``/costdna settings team|alerts …`` and the
buttons of a spike alert.

Commands (routed from :mod:`handlers.commands`):

- ``spikes``: the account's open spikes with their buttons;
- ``digest``: the daily digest, now (``jobs.digest.digest_data``);
- ``settings team <team> @user… #channel``: whom a team's spikes go to (people DMed, a channel);
  ``settings team <team>`` shows it, ``settings team <team> off`` removes it;
- ``settings alerts``: show; ``settings alerts strict|audit|auto`` (the account's governance),
  ``settings alerts panic`` / ``settings alerts resume`` (the global switch), ``settings alerts #channel``
  (where unrouted alerts and storm summaries go). Every change is an approver's, like the digest setting.

Actions (routed from :mod:`handlers.actions`; values ``spike_id.nonce[.arg]``):

==================  ===========================  ==================================================
action id           value                        does
==================  ===========================  ==================================================
``spike_expected``  ``spike_id.nonce``           mark expected: the level is stored, the watch learns it
``spike_snooze``    ``spike_id.nonce.24h|7d``    snooze the spike for 24 hours or 7 days
``spike_explain``   ``spike_id.nonce``           the evidence, posted in the alert's thread
``spike_not_ours``  ``spike_id.nonce``           "not ours": asks "who owns this?"; the answer re-routes
``spike_assign``    ``spike_id.nonce.team``      (select) assign a team: a label, and the spike re-routes
==================  ===========================  ==================================================

Every click is checked against the database (the nonce, the spike's state): a forged value changes
nothing, a replayed click gets "already …" and changes nothing. Decisions are audited by
``storage.watch_repo.decide_spike`` (and ``add_label`` / ``set_expected`` / ``reroute_spike``).

A spike that must go to its (new) owner after a label is returned as a :class:`~handlers.context.Post`
tracking ``(ROUTE, spike_id)``: a chat adapter that can deliver alerts (Slack: ``bot.slack.alerts``)
sends it along the spike's route instead of posting it where the click happened; others show it.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from handlers import views
from handlers import watch_views as wv
from handlers.cards import Card, Section, error_card
from handlers.context import Post, Reply, Services, Who
from storage import repo

log = logging.getLogger("costdna.handlers")

ROUTE = "spike_route"  # Post.tracks kind: deliver this spike along its route
MODES = ("strict", "audit", "auto")
SNOOZE_SLACK = timedelta(hours=1)  # a snooze must end this much later than the current one to count
_USER = re.compile(r"^<?@([A-Za-z0-9._-]+)(?:\|[^>]*)?>?$")
_CHANNEL = re.compile(r"^<?#([A-Za-z0-9._-]+)(?:\|([^>]*))?>?$")


def _now() -> float:
    return time.time()


# -- commands ----------------------------------------------------------------------------------------


async def cmd_spikes(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    if args:
        from handlers.commands import help_card

        return Reply.of(help_card("`spikes` takes no arguments."))
    from handlers.commands import _account
    from storage import watch_repo

    async with svc.db.session() as s:
        account = await _account(s, who)
        spikes = await watch_repo.open_spikes(s, account.id, statuses=("open", "snoozed"))
    return Reply.of(wv.spikes_list_card(spikes, account, now=_now()))


async def cmd_digest(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    if args:
        from handlers.commands import help_card

        return Reply.of(help_card("`digest` takes no arguments."))
    from handlers.commands import _account
    from jobs.digest import digest_data

    async with svc.db.session() as s:
        account = await _account(s, who)
        data = await digest_data(s, account, _now(), settings=svc.settings)
    return Reply.of(wv.digest_card(data, account))


def _parse_targets(words: list[str]) -> tuple[list[str], str | None, list[str]]:
    """``@alice <@U1> #ops`` -> (users, channel, unrecognized words)."""
    users: list[str] = []
    channel: str | None = None
    bad: list[str] = []
    for w in words:
        if (m := _USER.match(w)) is not None:
            users.append(m.group(1))
        elif (m := _CHANNEL.match(w)) is not None:
            channel = m.group(1)
        else:
            bad.append(w)
    return users, channel, bad


def _route_text(route: Any) -> str:
    if route is None:
        return "_not mapped: its alerts go to the alerts channel_"
    parts = [", ".join(views.mention(u) for u in route.users) or ""]
    if route.channel:
        parts.append(f"<#{route.channel}>")
    return " and ".join(p for p in parts if p) or "_nobody_"


async def settings_watch(svc: Services, who: Who, args: list[str]) -> Reply:
    """``settings team …`` and ``settings alerts …`` (``args[0]`` is ``team`` or ``alerts``)."""
    from handlers.commands import _account, approver_ids, help_card, workspace
    from storage import watch_repo

    what = args[0].lower()
    async with svc.db.session() as s:
        ws = await workspace(s, who)
        approvers = approver_ids(ws, svc.settings)
        account = await _account(s, who)

        def refuse() -> Reply:
            log.info("settings %s: %s is not an approver", what, who.user_id)
            return Reply.of(error_card("Only an approver may change where and whether alerts go.",
                                       "ask one of: " + (", ".join(views.mention(a) for a in approvers)
                                                         or "nobody yet: set COSTDNA_APPROVERS")))

        if what == "team":
            if len(args) < 2:
                routes = await watch_repo.team_routes(s, ws.id)
                lines = [f"• *{t}*: {_route_text(r)}" for t, r in sorted(routes.items())] or ["_no team mapped yet_"]
                return Reply.of(Card(title="Where spike alerts go", ephemeral=True, sections=[
                    Section("\n".join(lines)),
                    Section("Map a team: `/costdna settings team <team> @user… #channel`")]))
            team = args[1].strip()
            if len(args) == 2:
                route = await watch_repo.team_route(s, ws.id, team)
                return Reply.of(Card(title=f"Spike alerts of {team}", ephemeral=True,
                                     sections=[Section(_route_text(route))]))
            if not who.is_among(approvers):
                return refuse()
            if len(args) == 3 and args[2].lower() in ("off", "none", "remove"):
                await watch_repo.set_team_route(s, ws.id, team, [], None, actor=who.user_id)
                return Reply.of(Card(title=f"Spike alerts of {team}", ephemeral=True, sections=[Section(
                    f"*{team}* is no longer mapped: its alerts go to the alerts channel.")]))
            users, channel, bad = _parse_targets(args[2:])
            if bad or not (users or channel):
                return Reply.of(help_card(f"`{' '.join(bad)[:60] or team}`: use "
                                          "`settings team <team> @user… #channel` (mention people and/or a channel)."))
            await watch_repo.set_team_route(s, ws.id, team, users, channel, actor=who.user_id)
            await _adopt(s, account, ws, who)
            route = await watch_repo.team_route(s, ws.id, team)
            return Reply.of(Card(title=f"Spike alerts of {team}", ephemeral=True, sections=[Section(
                f"Spikes on *{team}*'s resources now go to {_route_text(route)}.")]))

        # alerts
        if len(args) == 1:
            return Reply.of(await _alerts_card(s, ws, account))
        if len(args) != 2:
            return Reply.of(help_card("Use `settings alerts strict|audit|auto|panic|resume` or "
                                      "`settings alerts #channel`."))
        arg = args[1]
        if not who.is_among(approvers):
            return refuse()
        low = arg.lower()
        if low in MODES:
            await watch_repo.set_alerts_mode(s, account, low, actor=who.user_id)
            note = {"strict": f"*{account.name}* is in strict mode: spikes are scored and stored, nobody is notified.",
                    "audit": f"*{account.name}* is in audit mode: spikes are sent to their owners.",
                    "auto": f"*{account.name}* is in auto mode: strict until 7 days of cost history, then audit."}[low]
            if await watch_repo.panic(s):  # choosing a mode is the way out of panic (as `resume` is)
                await watch_repo.set_switch(s, watch_repo.PANIC, False, actor=who.user_id)
                note += " Panic is over: alerts resume, each account by its mode."
        elif low == "panic":
            await watch_repo.set_switch(s, watch_repo.PANIC, True, actor=who.user_id)
            note = ("⏸ *Panic*: every alert stops now, in every account. Spikes are still scored and stored; the "
                    "digest says alerts are paused. `/costdna settings alerts resume` turns them back on.")
        elif low in ("resume", "calm", "unpanic"):
            await watch_repo.set_switch(s, watch_repo.PANIC, False, actor=who.user_id)
            note = "Alerts resume (each account by its mode)."
        elif (m := _CHANNEL.match(arg)) is not None:
            await repo.update_workspace_settings(s, ws, actor=who.user_id, alerts_channel=m.group(1))
            await _adopt(s, account, ws, who)
            note = f"Unrouted alerts and storm summaries go to <#{m.group(1)}>."
        else:
            return Reply.of(help_card(f"`{arg[:40]}`: use `settings alerts strict|audit|auto|panic|resume` or "
                                      "`settings alerts #channel`."))
        card = await _alerts_card(s, ws, account)
        card.sections.insert(0, Section(note))
        return Reply.of(card)


async def _adopt(s: Any, account: Any, ws: Any, who: Who) -> None:
    """The account this workspace works on routes its alerts through this workspace's settings: link it
    (``Account.workspace_id``) when no workspace has it yet."""
    if account.workspace_id is None:
        account.workspace_id = ws.id
        await repo.audit(s, "account.workspace", actor=who.user_id, account_id=account.id, target=account.name,
                         workspace=ws.external_id)


async def _alerts_card(s: Any, ws: Any, account: Any) -> Card:
    from jobs.route import alerts_channel
    from jobs.watch import alerts_mode
    from storage import watch_repo

    mode = alerts_mode(account)
    panic = await watch_repo.panic(s)
    channel = alerts_channel(ws)
    fields = [("Mode", f"{mode}" + (" (strict until 7 days of cost history, then audit)" if mode == "auto" else "")),
              ("Panic switch", "⏸ *on*: nobody is notified" if panic else "off"),
              ("Alerts channel", f"<#{channel}>" if channel else "_none: set `settings alerts #channel`_")]
    return Card(title=f"Spike alerts of {account.name}", ephemeral=True, sections=[Section("", fields=fields)],
                context="`settings alerts strict|audit|auto|panic|resume` · `settings team <team> @user… #channel`")


# -- actions -----------------------------------------------------------------------------------------


def refusal(message: str, hint: str = "") -> Reply:
    return Reply(ephemeral=error_card(message, hint))


def parse_value(value: str, with_arg: bool) -> tuple[int, str, str] | None:
    """``spike_id.nonce[.arg]`` -> (id, nonce, arg); None when malformed. A team (arg) may contain dots."""
    parts = (value or "").split(views.SEP, 2)
    if len(parts) < 2 or not parts[0].isdigit() or len(parts[0]) >= 19 or not parts[1]:
        return None
    arg = parts[2].strip() if len(parts) == 3 else ""
    if with_arg != bool(arg):
        return None
    return int(parts[0]), parts[1], arg


async def handle_spike_action(svc: Services, who: Who, action: str, value: str) -> Reply:
    """Route a spike button; ``repo.NotFound`` / ``repo.Conflict`` propagate to ``handle_action``,
    which turns them into an ephemeral note."""
    parsed = parse_value(value, with_arg=action in (wv.SPIKE_SNOOZE, wv.SPIKE_ASSIGN))
    if parsed is None:
        log.warning("malformed %s value %r from %s", action, (value or "")[:80], who.user_id)
        return refusal("That button's value is malformed; nothing was changed.")
    spike_id, nonce, arg = parsed
    fn = {wv.SPIKE_EXPECTED: _expected, wv.SPIKE_SNOOZE: _snooze, wv.SPIKE_EXPLAIN: _explain,
          wv.SPIKE_NOT_OURS: _not_ours, wv.SPIKE_ASSIGN: _assign}[action]
    return await fn(svc, who, spike_id, nonce, arg)


async def _account_of(s: Any, spike: Any) -> Any:
    return await repo.get_account(s, spike.account_id)


async def _expected(svc: Services, who: Who, spike_id: int, nonce: str, arg: str) -> Reply:
    from storage import watch_repo

    async with svc.db.session() as s:
        spike, level = await watch_repo.mark_expected(s, spike_id, nonce, who.user_id)
        account = await _account_of(s, spike)
        card = wv.decided_card(spike, f"Marked *expected* by {who.mention()}: costdna takes "
                                      f"{wv.per_hour(level)} as normal for `{spike.resource_id}` and stays quiet "
                                      "about this pattern.", account)
    return Reply(replace=card)


async def _snooze(svc: Services, who: Who, spike_id: int, nonce: str, arg: str) -> Reply:
    from storage import watch_repo

    if arg not in wv.SNOOZES:
        return refusal(f"`{arg[:20]}` is not a snooze costdna offers; nothing was changed.")
    until = datetime.fromtimestamp(_now(), UTC) + timedelta(seconds=wv.SNOOZES[arg])
    async with svc.db.session() as s:
        spike = await watch_repo.check_spike_nonce(s, spike_id, nonce)
        current = spike.snooze_until
        if spike.status == "snoozed" and current is not None:
            current = current if current.tzinfo else current.replace(tzinfo=UTC)
            if until < current + SNOOZE_SLACK:  # a replayed (or double) click: not a longer snooze
                raise repo.Conflict(f"this spike is already snoozed until {wv.when(current)}; nothing was changed")
        spike = await watch_repo.decide_spike(s, spike_id, nonce, "snooze", who.user_id, until=until)
        account = await _account_of(s, spike)
        card = wv.decided_card(spike, f"*Snoozed* until {wv.when(until)} by {who.mention()}.", account)
    return Reply(replace=card)


async def _explain(svc: Services, who: Who, spike_id: int, nonce: str, arg: str) -> Reply:
    from storage import watch_repo

    async with svc.db.session() as s:
        spike = await watch_repo.check_spike_nonce(s, spike_id, nonce)
        card = wv.explain_card(spike)
    return Reply.of(card)  # the adapter posts an action's posts in the clicked message's thread


async def _not_ours(svc: Services, who: Who, spike_id: int, nonce: str, arg: str) -> Reply:
    from storage import watch_repo

    async with svc.db.session() as s:
        spike = await watch_repo.decide_spike(s, spike_id, nonce, "not_ours", who.user_id)
        account = await _account_of(s, spike)
        scan = await repo.latest_predictions_scan(s, spike.account_id)
        scan_id = scan.id if scan is not None else None
        pred = await repo.prediction_for(s, scan_id, spike.arn) if scan_id else None
        (prompt,) = await repo.create_prompts(s, spike.account_id, [spike.arn], scan_id=scan_id,
                                              asked_by=who.user_id)
        teams = [t for t in await views.known_teams(s, spike.account_id, scan_id) if t != spike.owner_team]
        question = views.prompt_card(prompt, pred, teams)
        question.sections.insert(0, Section(f"{who.mention()} says the cost spike on `{spike.resource_id}` is not "
                                            f"{spike.owner_team or 'theirs'}. Who owns it? The answer re-routes "
                                            "the alert."))
        card = wv.decided_card(spike, f"Marked *not ours* by {who.mention()}; costdna asks who owns it.", account)
        prompt_id = prompt.id
    return Reply(replace=card, posts=[Post(question, tracks=("prompt", prompt_id))])


async def _assign(svc: Services, who: Who, spike_id: int, nonce: str, team: str) -> Reply:
    from storage import watch_repo

    async with svc.db.session() as s:
        spike = await watch_repo.check_spike_nonce(s, spike_id, nonce)
        scan = await repo.latest_predictions_scan(s, spike.account_id)
        teams = await views.known_teams(s, spike.account_id, scan.id if scan is not None else None)
        if team not in teams:
            log.warning("spike_assign with unknown team %r from %s", team[:80], who.user_id)
            return refusal(f"{team[:60]!r} is not a team costdna knows; nothing was changed.")
        if spike.owner_source == "label" and spike.owner_team == team:
            raise repo.Conflict(f"this spike is already assigned to {team}; nothing was changed")
        await repo.add_label(s, spike.account_id, spike.arn, team, source="human", actor=who.user_id)
        spike = await watch_repo.reroute_spike(s, spike_id, team, who.user_id)
        account = await _account_of(s, spike)
        card = wv.decided_card(spike, f"Assigned to *{team}* by {who.mention()}; the alert goes to them.", account)
        alert = wv.alert_card(spike, account, now=_now())
    return Reply(replace=card, posts=[Post(alert, tracks=(ROUTE, spike_id))])


async def reroute_after_label(s: Any, account_id: int, arn: str, team: str, actor: str) -> list[tuple[Card, int]]:
    """After a "who owns this?" answer: spikes of ``arn`` marked "not ours" now belong to ``team`` and go
    to it. Returns (alert card, spike id) for each, to deliver along its new route (``ROUTE`` posts)."""
    from storage import watch_repo

    out = []
    account = await repo.get_account(s, account_id)
    for sid in await watch_repo.spike_ids_of(s, account_id, arn, "not_ours"):
        spike = await watch_repo.reroute_spike(s, sid, team, actor)
        out.append((wv.alert_card(spike, account, now=_now()), sid))
    return out
