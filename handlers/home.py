"""The App Home tab: accounts and their last scans, the labeling queue, pending approvals, how to ask."""

from __future__ import annotations

from handlers import views
from handlers.cards import Card, Section
from handlers.commands import approver_ids, label_candidates
from handlers.context import Services, Who
from storage import repo


async def home_cards(svc: Services, who: Who) -> list[Card]:
    async with svc.db.session() as s:
        ws = await repo.find_workspace(s, who.platform, who.workspace)
        approvers = approver_ids(ws, svc.settings)
        accounts = await repo.list_accounts(s)
        cards: list[Card] = []
        if not accounts:
            return [Card(title="costdna", sections=[Section(
                "No account yet. `/costdna scan` scans a synthetic demo account; add your own with "
                "`costdna accounts add`.")])]
        lines, queue, pending = [], 0, 0
        for a in accounts:
            last = await repo.last_scan(s, a.id)
            ok = await repo.latest_predictions_scan(s, a.id)
            if last is None:
                state = "never scanned"
            elif last.status in ("queued", "running"):
                how = repo.scan_state(last) if last.worker_lost else last.status
                state = f"scan #{last.id} {how} `{views.progress_bar(last.progress)}`"
            elif last.status == "failed":
                state = f"scan #{last.id} failed: {last.error}"
            else:
                sm = last.summary or {}
                state = (f"scan #{last.id}: {sm.get('resources', 0)} resources, untagged "
                         f"{views.money(sm.get('untagged_cost_usd'))}, attributable "
                         f"{views.money(sm.get('attributable_cost_usd'))}")
            lines.append(f"• *{a.name}* ({a.kind}): {state}")
            if ok is not None:
                queue += len(await label_candidates(s, a.id, ok.id))
            pending += (await repo.change_set_counts(s, a.id)).get("proposed", 0)
        open_q = await repo.open_prompt_count(s)
    cards.append(Card(title="Accounts", sections=[Section("\n".join(lines))], kind="summary"))
    cards.append(Card(title="Who owns this?", sections=[Section(
        f"*{open_q}* questions are open; *{queue}* untagged resources still have no owner label. "
        "`/costdna label` asks about the costliest uncertain ones.")], kind="prompt"))
    mine = who.is_among(approvers)
    cards.append(Card(title="Tag approvals", sections=[Section(
        f"*{pending}* tag change sets wait for approval."
        + (" You are an approver." if mine else " Approvers: "
           + (", ".join(views.mention(a) for a in approvers) or "none yet") + "."))], kind="changeset"))
    cards.append(ask_card())
    return cards


ASK_EXAMPLES = ("top spenders last month", "who owns i-0abc123?", "spend by team month over month",
                "untagged spend", "why did our bill spike Tuesday?")


def ask_card() -> Card:
    """The "Ask" hint: example questions, and how follow-ups keep the conversation's context."""
    examples = "\n".join(f"• `/costdna ask {q}`" for q in ASK_EXAMPLES)
    return Card(title="Ask", kind="info", sections=[Section(
        "Ask about your cloud spend in plain words, with `/costdna ask <question>` or by mentioning "
        "`@costdna` in a channel:\n" + examples),
        Section("Follow up in the answer's thread (_and last month?_, _who owns the second one?_): the "
                "conversation keeps its context there for a while.")],
        context="answers cite the resource ids they rest on")
