"""The ask agent's LLM mode: an OpenAI-compatible model chooses and chains the same read-only tools.

Used when ``OPENAI_API_KEY`` is set (``OPENAI_BASE_URL`` for another OpenAI-compatible endpoint,
``COSTDNA_LLM_MODEL`` for the model). The loop is the SDK's function calling, not streamed, at most
``max_steps`` requests. Every tool call runs through ``engine.ask.tools.run_tool`` over the in-memory
``Facts``; the model sees each result as JSON (text, data, citations; cut to a sane size).

The final text must pass ``engine.ask.grounding.check``: every resource id and money figure in it must
appear in a tool result of this conversation. Anything else falls back to the offline router's answer
(``mode = "fallback"``, ``note`` says why) and logs the reason on ``costdna.ask.llm`` -- never the key:
a timeout, HTTP 429 / 5xx / any other HTTP error, an unreachable endpoint, a refusal or an empty answer,
a malformed tool call (bad JSON, unknown tool, bad arguments; the model gets one corrective tool
message first), too many steps, or an answer that fails the grounding check.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import openai

from engine.ask.answer import Answer
from engine.ask.facts import Facts
from engine.ask.grounding import check, mention_at, quoted_figures
from engine.ask.tools import TOOLS, ToolError, ToolResult, run_tool

log = logging.getLogger("costdna.ask.llm")

RESULT_LIMIT = 8000  # characters of one tool result the model reads
CONTEXT_LIMIT = 2000  # characters of the thread's earlier context

SYSTEM_PROMPT = """\
You are costdna's cost analyst. You answer questions about one cloud account's costs and resource \
ownership using ONLY the tools provided; they read the account's stored scan results.

Rules:
- Call tools to get evidence. Every number and every resource id in your answer must come from a tool \
result in this conversation; never estimate, extrapolate or invent one. Do not do arithmetic on figures \
unless the tool gives the result.
- Quote money exactly as the tools give it, in the form $1,234.56.
- Cite resource ids in backticks, e.g. `i-0123456789abcdef0`, exactly as the tools give them.
- If the tools have no evidence for the question, say so plainly.
- You are read-only: never propose, offer or claim to make changes (tagging, stopping, deleting, \
resizing resources); a person does that.
- Answer briefly (a few sentences or a short list), in Slack markdown (*bold*, `code`)."""


class _Fallback(Exception):
    """Give up on the LLM: ``note`` is shown to the person, ``detail`` goes to the log."""

    def __init__(self, note: str, detail: str = "") -> None:
        super().__init__(note)
        self.note = note
        self.detail = detail or note


async def llm_answer(question: str, facts: Facts, *, offline: Callable[[], Awaitable[Answer]],
                     api_key: str, base_url: str | None, model: str, max_steps: int = 6,
                     timeout_s: float = 20.0, context: dict | None = None) -> Answer:
    """The LLM's answer (``mode="llm"``), or the offline one (``mode="fallback"``, ``note`` says why)."""
    try:
        client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)
    except Exception as e:  # noqa: BLE001 - a bad base URL must not break the ask
        return await _fall_back(offline, _Fallback("the LLM client could not be set up; this is the offline answer",
                                                   f"client setup failed: {type(e).__name__}"), api_key, model)
    try:
        async with client:
            return await _converse(client, question, facts, model=model, max_steps=max_steps, context=context)
    except _Fallback as fb:
        return await _fall_back(offline, fb, api_key, model)
    except openai.APITimeoutError:
        fb = _Fallback(f"the LLM did not answer within {timeout_s:g}s; this is the offline answer", "timeout")
    except openai.RateLimitError as e:
        fb = _Fallback("the LLM endpoint is rate-limiting (HTTP 429); this is the offline answer", _status(e))
    except openai.APIStatusError as e:
        what = "failed" if e.status_code >= 500 else "refused the request"
        fb = _Fallback(f"the LLM endpoint {what} (HTTP {e.status_code}); this is the offline answer", _status(e))
    except openai.APIConnectionError as e:
        fb = _Fallback("the LLM endpoint could not be reached; this is the offline answer",
                       f"connection error: {type(e.__cause__ or e).__name__}")
    except openai.OpenAIError as e:
        fb = _Fallback("the LLM's reply could not be read; this is the offline answer", f"{type(e).__name__}")
    except Exception as e:  # noqa: BLE001 - a bug in this loop must not cost the person their answer
        log.exception("ask: LLM mode failed unexpectedly (model=%s)", model)
        fb = _Fallback("the LLM mode failed; this is the offline answer", f"unexpected {type(e).__name__}")
    return await _fall_back(offline, fb, api_key, model)


def _status(e: openai.APIStatusError) -> str:
    code = getattr(e, "code", None)
    return f"HTTP {e.status_code}" + (f" ({code})" if isinstance(code, str) and code else "")


async def _fall_back(offline: Callable[[], Awaitable[Answer]], fb: _Fallback, api_key: str, model: str) -> Answer:
    log.warning("ask: LLM answer replaced by the offline answer: %s (model=%s)", _scrub(fb.detail, api_key), model)
    a = await offline()
    a.mode = "fallback"
    a.note = fb.note
    return a


def _scrub(text: str, api_key: str) -> str:
    """``text`` with the key (and anything shaped like an OpenAI key) masked."""
    if api_key:
        text = text.replace(api_key, "***")
    return re.sub(r"\bsk-[A-Za-z0-9_\-*]{6,}", "sk-***", text)


async def _converse(client: openai.AsyncOpenAI, question: str, facts: Facts, *, model: str, max_steps: int,
                    context: dict | None) -> Answer:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    if context:
        earlier = json.dumps(context, default=str)[:CONTEXT_LIMIT]
        messages.append({"role": "system", "content": f"Earlier in this thread (for follow-ups): {earlier}"})
    messages.append({"role": "user", "content": question})
    tools = [t.schema() for t in TOOLS.values()]
    results: list[ToolResult] = []
    called: list[str] = []
    corrected = False  # the one corrective message for a malformed tool call has been spent

    for _ in range(max(1, max_steps)):
        resp = await client.chat.completions.create(model=model, messages=messages, tools=tools)  # type: ignore[arg-type]
        if not resp.choices:
            raise _Fallback("the LLM gave an empty answer; this is the offline answer", "no choices")
        choice = resp.choices[0]
        msg = choice.message
        if getattr(msg, "refusal", None) or choice.finish_reason == "content_filter":
            raise _Fallback("the LLM declined to answer; this is the offline answer",
                            f"refusal (finish_reason={choice.finish_reason})")
        if msg.tool_calls:
            messages.append({"role": "assistant", "content": msg.content,
                             "tool_calls": [_call_json(tc) for tc in msg.tool_calls]})
            for tc in msg.tool_calls:
                name, args, problem = _parse_call(tc)
                result: ToolResult | None = None
                if not problem:
                    try:
                        result = await run_tool(facts, name, args)
                    except ToolError as e:
                        problem = str(e) if str(e).startswith(name) else f"{name}: {e}"
                    except Exception as e:  # a tool's bug: no point asking the model again
                        log.exception("ask: tool %s failed", name)
                        raise _Fallback(f"the `{name}` tool failed; this is the offline answer",
                                        f"tool {name} raised {type(e).__name__}") from e
                if problem:
                    problem = problem[:300]
                    if corrected:
                        raise _Fallback(f"the LLM made a malformed tool call ({problem}); this is the offline answer",
                                        f"malformed tool call again: {problem}")
                    corrected = True
                    log.info("ask: malformed tool call, asking the model once more: %s", problem)
                    content = json.dumps({"error": problem,
                                          "hint": "call one of the offered tools with arguments that match its "
                                                  "JSON schema"})
                else:
                    assert result is not None
                    results.append(result)
                    called.append(name)
                    content = _result_json(result)
                messages.append({"role": "tool", "tool_call_id": getattr(tc, "id", "") or "", "content": content})
            continue
        text = (msg.content or "").strip()
        if not text:
            raise _Fallback("the LLM gave an empty answer; this is the offline answer",
                            f"empty answer (finish_reason={choice.finish_reason})")
        if choice.finish_reason == "length":
            raise _Fallback("the LLM's answer was cut off; this is the offline answer", "finish_reason=length")
        problems = check(text, results, question=question)
        if problems:
            raise _Fallback(f"the LLM's answer quoted a {problems[0]}; this is the offline answer",
                            f"grounding check failed: {'; '.join(problems[:5])}")
        return _answer(question, text, results, called)
    raise _Fallback(f"the LLM did not finish within {max_steps} steps; this is the offline answer",
                    f"max steps ({max_steps}) exhausted")


def _call_json(tc: Any) -> dict[str, Any]:
    fn = getattr(tc, "function", None)
    return {"id": getattr(tc, "id", "") or "", "type": "function",
            "function": {"name": getattr(fn, "name", "") or "", "arguments": getattr(fn, "arguments", "") or ""}}


def _parse_call(tc: Any) -> tuple[str, dict[str, Any], str]:
    """(tool name, arguments, problem); ``problem`` is "" when the call is well formed."""
    fn = getattr(tc, "function", None)
    if getattr(tc, "type", "function") != "function" or fn is None:
        return "", {}, f"unsupported tool call type {getattr(tc, 'type', '?')!r}"
    name = getattr(fn, "name", "") or ""
    if name not in TOOLS:
        return name, {}, f"unknown tool {name!r}"
    raw = getattr(fn, "arguments", "") or "{}"
    try:
        args = json.loads(raw)
    except ValueError as e:
        return name, {}, f"{name}: arguments are not valid JSON ({e.msg})"
    if not isinstance(args, dict):
        return name, {}, f"{name}: arguments must be a JSON object"
    return name, args, ""


def _result_json(r: ToolResult) -> str:
    """One tool result as the model reads it: JSON, the data cut down when it is too long."""
    head = {"tool": r.tool, "ok": r.ok, "text": r.text[:RESULT_LIMIT // 2], "citations": list(r.citations[:50]),
            "figures": dict(list(r.figures.items())[:50])}
    whole = json.dumps({**head, "data": r.data}, default=str)
    if len(whole) <= RESULT_LIMIT:
        return whole
    data = json.dumps(r.data, default=str)
    keep = RESULT_LIMIT
    while True:  # the cut data is itself escaped into JSON: shrink until the whole fits
        out = json.dumps({**head, "data_truncated": data[:keep] + " …",
                          "note": "data cut short; narrow the question (a team, a period, fewer rows) for more"},
                         default=str)
        if len(out) <= RESULT_LIMIT or keep == 0:
            return out
        keep = max(0, keep - (len(out) - RESULT_LIMIT) - 16)


def _answer(question: str, text: str, results: list[ToolResult], called: list[str]) -> Answer:
    cited: list[str] = []
    for r in results:
        cited.extend(c for c in r.citations if c not in cited)
    at = {c: mention_at(text, c) for c in cited}
    mentioned = sorted((c for c in cited if at[c] >= 0), key=lambda c: at[c])  # in the answer's order
    citations = mentioned or cited
    figures: dict[str, float] = {}
    for r in results:
        for k, v in quoted_figures(text, dict(r.figures)).items():
            key = k if k not in figures or figures[k] == v else f"{k} ({r.tool})"
            figures[key] = v
    tools = list(dict.fromkeys(called))
    last = results[-1] if results else None
    # the offline router reads tool/args/citations for a follow-up ("and last month?", "the second one")
    context = {"question": question, "tool": last.tool if last else None, "args": dict(last.args) if last else {},
               "citations": citations[:20], "tools": tools, "mode": "llm", "answer": text[:1000]}
    return Answer(question=question, title="Answer", text=text, tools=tools, citations=citations,
                  figures=figures, mode="llm", context=context)
