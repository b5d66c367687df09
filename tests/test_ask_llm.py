"""The ask agent's LLM mode against a local, scripted OpenAI-compatible stand-in, over real HTTP.

A good run answers from the tools (mode "llm"); an invented figure or resource id, and every way the
endpoint or the model can fail, gives the offline answer (mode "fallback") with the reason in ``note``
and a log line that never carries the key.
"""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, date, datetime, timedelta

import pytest
import pytest_asyncio

from engine.ask.answer import Answer
from engine.ask.facts import Facts, Res
from engine.ask.grounding import money_in
from engine.ask.tools import TOOLS, ToolResult
from handlers.ask_llm import _result_json, llm_answer
from tests.openai_standin import (
    OpenAIStandIn,
    call,
    call_raw,
    delay,
    final,
    refusal,
    status,
    tool_messages,
)

pytestmark = pytest.mark.asyncio

KEY = "sk-test-DO-NOT-LOG-0123456789abcdef"
ACCOUNT = "123456789012"
QUESTION = "what are our top spenders?"


def _res(rid: str, arn: str, team: str, usd: float, type_: str = "ec2:instance") -> Res:
    return Res(arn=arn, resource_id=rid, type=type_, region="us-east-1", tags={"team": team} if team else {},
               team=team or "data", confidence=0.9, tag_team=team, monthly_usd=usd)


BIG = _res("i-0a1b2c3d4e5f60001", f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0a1b2c3d4e5f60001", "payments",
           4000.0)
DB = _res("orders-db", f"arn:aws:rds:us-east-1:{ACCOUNT}:db:orders-db", "checkout", 900.0, "rds:db")
LOOSE = _res("vol-0a1b2c3d4e5f60002", f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-0a1b2c3d4e5f60002", "", 30.0,
             "ec2:volume")


def make_facts() -> Facts:
    first = date(2026, 11, 1)
    daily = []
    for k in range(30):
        d = first + timedelta(days=k)
        daily += [(BIG.arn, d, 133.37), (DB.arn, d, 30.05), (LOOSE.arn, d, 1.01)]
    return Facts.build(ACCOUNT, 7, [BIG, DB, LOOSE], daily, now=datetime(2026, 11, 30, 18, tzinfo=UTC))


async def offline_answer() -> Answer:
    return Answer(question=QUESTION, title="Top spenders", text="offline: `i-0a1b2c3d4e5f60001` leads",
                  tools=["top_spenders"], citations=[BIG.resource_id])


@pytest_asyncio.fixture
async def standin():
    async with OpenAIStandIn() as s:
        yield s


async def ask(standin: OpenAIStandIn, *, max_steps: int = 6, timeout_s: float = 5.0,
              base_url: str | None = None, key: str = KEY) -> Answer:
    return await llm_answer(QUESTION, make_facts(), offline=offline_answer, api_key=key,
                            base_url=base_url or standin.base_url, model="standin-model", max_steps=max_steps,
                            timeout_s=timeout_s)


def quote_first(messages: list[dict]) -> str:
    """A good model: quotes the first citation of the last tool result and that resource's figure."""
    result = tool_messages(messages)[-1]["content"]
    rid = result["citations"][0]
    line = next(ln for ln in result["text"].splitlines() if f"`{rid}`" in ln)
    return f"The top spender is `{rid}` at {money_in(line)[0].raw}."


def fell_back(a: Answer, *words: str) -> None:
    assert a.mode == "fallback", (a.mode, a.text, a.note)
    assert a.text.startswith("offline:")
    assert a.note.endswith("this is the offline answer")
    for w in words:
        assert w in a.note, (w, a.note)


# -- a good run ----------------------------------------------------------------------------------


async def test_scripted_good_run_is_grounded(standin: OpenAIStandIn, caplog: pytest.LogCaptureFixture) -> None:
    standin.play(call("top_spenders"), final(quote_first))
    a = await ask(standin)
    assert a.mode == "llm" and a.note == "" and a.ok
    assert a.tools == ["top_spenders"]
    assert a.text.startswith(f"The top spender is `{BIG.resource_id}` at $")
    assert a.citations == [BIG.resource_id]
    assert a.figures == {BIG.resource_id: 4000.0}  # the run rate, as the tool's figures hold it
    assert a.text == f"The top spender is `{BIG.resource_id}` at $4,000.00."
    assert a.context["citations"] == [BIG.resource_id]
    assert a.context["tool"] == "top_spenders" and a.context["args"] == {}  # what the router's follow-ups read

    first, second = standin.requests
    assert standin.auth(0) == KEY  # the key travels in the Authorization header ...
    assert sorted(first.tool_names) == sorted(TOOLS)  # ... with every tool offered
    assert first.body["model"] == "standin-model"
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert first.messages[-1]["content"] == QUESTION
    roles = [m["role"] for m in second.messages]
    assert roles == ["system", "user", "assistant", "tool"]
    sent = tool_messages(second.messages)[0]["content"]
    assert sent["tool"] == "top_spenders" and sent["ok"] is True
    assert BIG.resource_id in sent["citations"] and sent["figures"][BIG.resource_id] == 4000.0
    assert BIG.resource_id in json.dumps(sent["data"])
    assert KEY not in caplog.text


async def test_corrective_message_then_recovery(standin: OpenAIStandIn) -> None:
    standin.play(call_raw("top_spenders", '{"n": 3'), call("top_spenders"), final(quote_first))
    a = await ask(standin)
    assert a.mode == "llm", a.note
    error = tool_messages(standin.requests[1].messages)[0]["content"]
    assert "not valid JSON" in error["error"]


async def test_two_tools_citations_in_the_answers_order(standin: OpenAIStandIn) -> None:
    standin.play(call("top_spenders"), call("attribute_resource", resource="orders-db"),
                 final(f"`{DB.resource_id}` belongs to checkout; the biggest is `{BIG.resource_id}` ($4,000.00/mo)."))
    a = await ask(standin)
    assert a.mode == "llm", a.note
    assert a.tools == ["top_spenders", "attribute_resource"]
    assert a.citations == [DB.resource_id, BIG.resource_id]
    assert a.context["tool"] == "attribute_resource" and a.context["args"] == {"resource": "orders-db"}
    assert a.figures[BIG.resource_id] == 4000.0


async def test_plain_answer_without_ids_or_money_is_accepted(standin: OpenAIStandIn) -> None:
    standin.play(final("I have no evidence about that in the stored results."))
    a = await ask(standin)
    assert a.mode == "llm" and a.tools == [] and a.citations == []


# -- the grounding check ---------------------------------------------------------------------------


async def test_liar_with_invented_figure_falls_back(standin: OpenAIStandIn,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="costdna.ask.llm")
    standin.play(call("top_spenders"),
                 final(lambda m: f"The top spender is `{BIG.resource_id}` at $98,765.43 this month."))
    a = await ask(standin)
    fell_back(a, "$98,765.43", "not found in any tool result")
    assert a.tools == ["top_spenders"] and a.citations == [BIG.resource_id]  # the offline answer's own
    assert any("grounding check failed" in r.getMessage() for r in caplog.records)


async def test_rounded_but_different_figure_falls_back(standin: OpenAIStandIn) -> None:
    def off_by_a_dollar(messages: list[dict]) -> str:
        m = money_in(tool_messages(messages)[-1]["content"]["text"])[0]
        return f"The top spender is `{BIG.resource_id}` at ${int(m.value) + 3:,}."

    standin.play(call("top_spenders"), final(off_by_a_dollar))
    fell_back(await ask(standin), "money figure")


async def test_invented_resource_id_falls_back(standin: OpenAIStandIn) -> None:
    def invent(messages: list[dict]) -> str:
        figure = money_in(tool_messages(messages)[-1]["content"]["text"])[0].raw
        return f"The top spender is `i-0fffffffffffffff9` at {figure}."

    standin.play(call("top_spenders"), final(invent))
    fell_back(await ask(standin), "`i-0fffffffffffffff9`")


async def test_answer_without_any_tool_call_cannot_quote_money(standin: OpenAIStandIn) -> None:
    standin.play(final("You spent $1,200.00 last month."))
    fell_back(await ask(standin), "$1,200.00")


# -- the endpoint failing --------------------------------------------------------------------------


async def test_rate_limit_falls_back(standin: OpenAIStandIn) -> None:
    standin.play(status(429))
    fell_back(await ask(standin), "HTTP 429")
    assert len(standin.requests) == 1  # max_retries=0: no retry behind our back


async def test_server_error_falls_back(standin: OpenAIStandIn) -> None:
    standin.play(call("top_spenders"), status(500))
    a = await ask(standin)
    fell_back(a, "HTTP 500")
    assert len(standin.requests) == 2


async def test_timeout_falls_back(standin: OpenAIStandIn) -> None:
    standin.play(delay(5, final("too late")))
    a = await ask(standin, timeout_s=0.3)
    fell_back(a, "within 0.3s")


async def test_unreachable_endpoint_falls_back(standin: OpenAIStandIn) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fell_back(await ask(standin, base_url=f"http://127.0.0.1:{port}/v1"), "could not be reached")


async def test_key_never_logged(standin: OpenAIStandIn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and the HTTP client's included
    standin.play(status(401, f"Incorrect API key provided: {KEY}"))
    fell_back(await ask(standin), "HTTP 401")
    standin.play(call("top_spenders"), final(quote_first))
    assert (await ask(standin)).mode == "llm"
    standin.play(call("top_spenders"), final("`i-0fffffffffffffff9` costs $1.00"))
    fell_back(await ask(standin))
    assert standin.auth() == KEY
    assert any(r.name == "costdna.ask.llm" and "HTTP 401" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text
    assert all(KEY not in str(r.args) and KEY not in r.getMessage() for r in caplog.records)


# -- the model misbehaving -------------------------------------------------------------------------


async def test_malformed_arguments_twice_fall_back(standin: OpenAIStandIn) -> None:
    standin.play(call_raw("top_spenders", "{not json"), call_raw("top_spenders", "[1, 2"))
    a = await ask(standin)
    fell_back(a, "malformed tool call", "not valid JSON")
    assert len(standin.requests) == 2


async def test_unknown_tool_falls_back(standin: OpenAIStandIn) -> None:
    standin.play(call("delete_everything"), call("delete_everything"))
    a = await ask(standin)
    fell_back(a, "unknown tool 'delete_everything'")
    first_error = tool_messages(standin.requests[1].messages)[0]["content"]
    assert "unknown tool" in first_error["error"]


async def test_bad_arguments_fall_back(standin: OpenAIStandIn) -> None:
    standin.play(call("attribute_resource"), call("attribute_resource"))  # its resource argument is required
    fell_back(await ask(standin), "malformed tool call", "attribute_resource")


async def test_refusal_falls_back(standin: OpenAIStandIn) -> None:
    standin.play(refusal())
    fell_back(await ask(standin), "declined")


async def test_empty_answer_falls_back(standin: OpenAIStandIn) -> None:
    standin.play(call("top_spenders"), final(""))
    fell_back(await ask(standin), "empty answer")


async def test_too_many_steps_fall_back(standin: OpenAIStandIn) -> None:
    standin.play(*[call("top_spenders")] * 5)
    a = await ask(standin, max_steps=3)
    fell_back(a, "3 steps")
    assert len(standin.requests) == 3 and standin.exhausted == 0


async def test_tool_results_are_json_and_bounded(standin: OpenAIStandIn) -> None:
    standin.play(call("search_resources", query="orders"), final("Nothing to add."))
    await ask(standin)
    raw = [m for m in standin.requests[1].messages if m["role"] == "tool"][0]["content"]
    sent = json.loads(raw)
    assert sent["tool"] == "search_resources" and "orders-db" in sent["citations"]
    big = ToolResult("search_resources", {}, True, "many", data={"rows": ["y\"" * 40] * 2000},
                     citations=[f"r-{i}" for i in range(500)])
    raw = _result_json(big)
    assert len(raw) <= 8000
    cut = json.loads(raw)
    assert cut["data_truncated"].startswith('{"rows"') and len(cut["citations"]) == 50


async def test_thread_context_reaches_the_model(standin: OpenAIStandIn) -> None:
    standin.play(final("Nothing to add."))
    ctx = {"tool": "top_spenders", "args": {"n": 3}, "citations": [BIG.resource_id]}
    a = await llm_answer("and the second one?", make_facts(), offline=offline_answer, api_key=KEY,
                         base_url=standin.base_url, model="m", context=ctx)
    assert a.mode == "llm"
    msgs = standin.requests[0].messages
    assert [m["role"] for m in msgs] == ["system", "system", "user"]
    assert BIG.resource_id in msgs[1]["content"] and "read-only" in msgs[0]["content"]
