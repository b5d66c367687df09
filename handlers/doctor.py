"""``/costdna doctor [account]`` and ``/costdna accounts [add [name]]``: onboarding a live AWS account.

``doctor`` runs :func:`engine.collectors.doctor.doctor` on the account (the workspace's, or the one named)
and shows what works, what is denied (with the IAM action to add), whether CloudTrail, the cost export and
flow logs are found and how fresh, and whether the owner tag keys are active cost allocation tags.
``accounts add`` walks through connecting an account: deploy the role template (the console quick-create
link with a freshly generated ExternalId), add the account on the command line, run doctor, scan.
``accounts`` lists the configured accounts. No platform SDK is imported here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import Any

from handlers.cards import Card, Section, error_card
from handlers.context import Reply, Services, Who

log = logging.getLogger("costdna.handlers")

DOCTOR_TIMEOUT_S = 90.0
MAX_PROBLEM_LINES = 15
_ICON = {"ok": "✅", "denied": "⛔", "error": "❌", "warn": "⚠️", "skipped": "➖"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def doctor_card(report: Any) -> Card:
    """The doctor's report as a card: the verdict, the problems with what to do, the checks that pass."""
    problems = [c for c in report.checks if c.status in ("denied", "error", "warn")]
    needed_bad = [c for c in problems if c.needed and c.status in ("denied", "error")]
    if report.ok:
        verdict = "everything a scan needs works" + (f" ({len(problems)} note(s) below)" if problems else "")
    else:
        verdict = f"{len(needed_bad)} problem(s) stop a scan"
    who = f"account `{report.account_id}` as `{report.identity}`" if report.identity else "no identity"
    sections = [Section(f"*{verdict}*\n{who} · regions {', '.join(report.regions)}")]
    lines = []
    for c in problems[:MAX_PROBLEM_LINES]:
        where = "" if c.region == "global" else f" ({c.region})"
        optional = "" if c.needed else " _(optional)_"
        line = f"{_ICON.get(c.status, '•')} `{c.check}`{where}{optional}: {_clip(c.detail, 300)}"
        if c.fix:
            line += f"\n      → {_clip(c.fix, 300)}"
        lines.append(line)
    if len(problems) > MAX_PROBLEM_LINES:
        lines.append(f"… and {len(problems) - MAX_PROBLEM_LINES} more: `costdna doctor --account {report.account}`")
    if lines:
        sections.append(Section(_clip("*To fix*\n" + "\n".join(lines), 2900)))
    actions = []
    if report.missing_actions(True):
        actions.append("*IAM actions a scan needs*: " + ", ".join(f"`{a}`" for a in report.missing_actions(True)))
    if report.missing_actions(False):
        actions.append("_Optional_ (tag writes, billing checks): "
                       + ", ".join(f"`{a}`" for a in report.missing_actions(False)))
    if actions:
        sections.append(Section(_clip("\n".join(actions), 2900)))
    passing: dict[str, list[str]] = {}
    for c in report.checks:
        if c.status == "ok":
            where = str(c.facts.get("source") or ("" if c.region == "global" else c.region))
            seen = passing.setdefault(c.check, [])
            if where and where not in seen:
                seen.append(where)
    if passing:
        ok_lines = [f"✅ `{k}`" + (f" ({', '.join(where)})" if where else "") for k, where in passing.items()]
        sections.append(Section(_clip("*Works*\n" + "\n".join(ok_lines), 2900)))
    fresh = [c for c in report.checks if c.check == "s3:ListBucket" and c.facts.get("newest_key")]
    if fresh:
        sections.append(Section("", fields=[(str(c.facts.get("source", "s3")),
                                             _clip(f"{c.facts.get('uri')}: {c.detail}", 900)) for c in fresh][:10]))
    counts = report.counts()
    context = " · ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return Card(title=f"costdna doctor: {report.account}", sections=sections, ephemeral=True,
                kind="summary" if report.ok else "error", context=context)


def template_url(settings: Any) -> str | None:
    """Where the role template is hosted (an S3 URL CloudFormation can read), if configured."""
    from engine.collectors.doctor import ROLE_TEMPLATE_URL_ENV

    return getattr(settings, "role_template_url", None) or os.environ.get(ROLE_TEMPLATE_URL_ENV) or None


def accounts_add_card(name: str, external_id: str, url: str | None) -> Card:
    """The walk-through of connecting an AWS account, with a fresh ExternalId filled in everywhere."""
    from engine.collectors.doctor import ROLE_TEMPLATE, ROLE_TEMPLATE_URL_ENV, quick_create_url

    deploy = (f"`aws cloudformation deploy --template-file {ROLE_TEMPLATE} --stack-name costdna "
              f"--capabilities CAPABILITY_NAMED_IAM --parameter-overrides "
              f"TrustedPrincipal=<ARN costdna runs as> ExternalId={external_id}`")
    if url:
        link = quick_create_url(external_id, url)
        step1 = (f"*1. Create the read-only role* in the account to connect: <{link}|open the CloudFormation "
                 f"quick-create page> (ExternalId `{external_id}` is filled in), set *TrustedPrincipal* to the ARN "
                 "`aws sts get-caller-identity` prints where costdna runs, and create the stack. "
                 f"Or from a shell: {deploy}")
    else:
        step1 = (f"*1. Create the read-only role* in the account to connect, from `{ROLE_TEMPLATE}`: {deploy} "
                 f"(TrustedPrincipal: what `aws sts get-caller-identity` prints where costdna runs). For a console "
                 f"link, host the template in S3 and set `{ROLE_TEMPLATE_URL_ENV}`.")
    step1 += " Add `AllowTagWrites=true` only if costdna should write approved owner tags."
    step2 = ("*2. Add the account* where costdna runs, with the stack's outputs:\n"
             f"`costdna accounts add {name} --aws --role-arn <RoleArn output> --external-id {external_id}` "
             "and, to read exports from S3, `--cloudtrail s3://bucket/prefix --cur s3://bucket/prefix "
             "--flowlogs s3://bucket/prefix --regions us-east-1,eu-west-1` (without a trail bucket, CloudTrail's "
             "LookupEvents is read).")
    step3 = (f"*3. Check it*: `/costdna doctor {name}` (or `costdna doctor --account {name}`) tries every call "
             "costdna makes and names any IAM action still missing.")
    step4 = (f"*4. Scan it*: `/costdna scan {name}`. The hourly watch then reads only new S3 objects; each scan "
             "reads the account again in full.")
    return Card(title=f"Connect an AWS account: {name}", sections=[Section(_clip(s, 2900)) for s in
                                                                   (step1, step2, step3, step4)],
                ephemeral=True, kind="help",
                context="keep the ExternalId private: the role can only be assumed with it")


async def cmd_doctor(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    from engine.collectors.doctor import doctor
    from handlers.commands import _account, help_card
    from jobs import control

    if len(args) > 1:
        return Reply.of(help_card("`doctor` takes at most one account name."))
    async with svc.db.session() as s:
        account = await control.resolve_account(s, args[0]) if args else await _account(s, who)
    if account.kind != "aws":
        return Reply.of(error_card(f"`{account.name}` is a {account.kind} account: doctor checks live AWS "
                                   "accounts.", "`/costdna accounts add` shows how to connect one"))
    try:
        report = await asyncio.wait_for(doctor(account, svc.settings), DOCTOR_TIMEOUT_S)
    except TimeoutError:
        log.warning("doctor %s timed out after %.0f s", account.name, DOCTOR_TIMEOUT_S)
        return Reply.of(error_card(f"Checking {account.name} took over {DOCTOR_TIMEOUT_S:.0f} s.",
                                   f"run `costdna doctor --account {account.name}` where costdna runs"))
    return Reply.of(doctor_card(report))


async def cmd_accounts(svc: Services, who: Who, args: list[str], rest: str) -> Reply:
    from engine.collectors.doctor import new_external_id
    from handlers.commands import help_card
    from storage import repo

    if args and args[0].lower() == "add":
        if len(args) > 2:
            return Reply.of(help_card("Use `accounts add [name]`."))
        name = args[1] if len(args) == 2 else "prod"
        if not _NAME.match(name):
            return Reply.of(error_card(f"`{_clip(name, 40)}` is not an account name: use letters, digits, `-`, "
                                       "`_` or `.`."))
        return Reply.of(accounts_add_card(name, new_external_id(), template_url(svc.settings)))
    if args and args[0].lower() != "list":
        return Reply.of(help_card("Use `accounts` (list them) or `accounts add [name]` (connect an AWS account)."))
    async with svc.db.session() as s:
        rows = await repo.list_accounts(s)
    if not rows:
        return Reply.of(Card(title="No accounts yet", sections=[Section(
            "`/costdna accounts add <name>` walks through connecting an AWS account.")], ephemeral=True))
    lines = [f"• *{a.name}* ({a.kind}, {a.status})"
             + (f": `{a.role_arn}`" if a.role_arn else f": `{a.bundle_path}`" if a.bundle_path else "")
             + (f" · {', '.join(a.regions)}" if a.regions else "") for a in rows]
    return Reply.of(Card(title="Accounts", sections=[Section(_clip("\n".join(lines), 2900))], ephemeral=True,
                         context="`/costdna doctor <name>` checks an AWS account's access"))
