"""A local, scripted stand-in for an OpenAI-compatible chat completions endpoint, for tests.

An aiohttp server on 127.0.0.1 (a free port) answering ``POST /v1/chat/completions`` in the OpenAI
wire format. It plays a *script*: one step per request, in order. A step is

- ``call(name, **args)`` / ``calls((name, args), ...)``: an assistant message with ``tool_calls``
  (``finish_reason: "tool_calls"``), arguments sent as a JSON string;
- ``call_raw(name, arguments)``: a tool call whose ``arguments`` string is sent as given (malformed JSON);
- ``final(text)``: a final assistant message (``finish_reason: "stop"``); ``text`` may be a callable of the
  request's messages (the whole conversation, tool results included) so a script can quote a tool's figure;
- ``refusal(text)``: ``message.refusal`` set, no content; ``final("")`` gives an empty answer;
- ``status(code)``: an HTTP error in OpenAI's error shape (429 with ``Retry-After: 0``, 500, ...);
- ``delay(seconds, then)``: sleep (ended early when the server stops), then play ``then``.

Once the script runs out, every further request gets HTTP 500 ``script exhausted`` (``exhausted`` counts
them). Every request is recorded in ``requests`` (headers, parsed body); ``auth()`` gives the bearer
token the client sent. Nothing is logged (no access log). Point ``AsyncOpenAI(base_url=standin.base_url)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MODEL = "standin-model"


@dataclass
class Step:
    kind: str  # calls | final | refusal | status | delay
    calls: list[tuple[str, str]] = field(default_factory=list)  # (tool name, raw arguments string)
    text: str | Callable[[list[dict[str, Any]]], str] | None = None
    status: int = 200
    seconds: float = 0.0
    then: Step | None = None


def call(name: str, **args: Any) -> Step:
    return Step("calls", calls=[(name, json.dumps(args))])


def calls(*pairs: tuple[str, dict[str, Any]]) -> Step:
    return Step("calls", calls=[(name, json.dumps(args)) for name, args in pairs])


def call_raw(name: str, arguments: str) -> Step:
    return Step("calls", calls=[(name, arguments)])


def final(text: str | Callable[[list[dict[str, Any]]], str]) -> Step:
    return Step("final", text=text)


def refusal(text: str = "I'm sorry, I can't help with that.") -> Step:
    return Step("refusal", text=text)


def status(code: int, message: str = "") -> Step:
    return Step("status", status=code, text=message)


def delay(seconds: float, then: Step | None = None) -> Step:
    return Step("delay", seconds=seconds, then=then or final("late answer"))


def tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``role: tool`` messages of a conversation, their ``content`` parsed as JSON where it is JSON."""
    out = []
    for m in messages:
        if m.get("role") != "tool":
            continue
        content = m.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        try:
            parsed = json.loads(content) if isinstance(content, str) else content
        except ValueError:
            parsed = content
        out.append({"tool_call_id": m.get("tool_call_id"), "content": parsed})
    return out


@dataclass
class Request:
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tool_names(self) -> list[str]:
        return [t.get("function", {}).get("name", "") for t in self.body.get("tools") or []]


class OpenAIStandIn:
    def __init__(self, script: list[Step] | None = None) -> None:
        self.script: list[Step] = list(script or [])
        self.requests: list[Request] = []
        self.exhausted = 0
        self._pos = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> OpenAIStandIn:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAIStandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- test controls and queries -----------------------------------------------------------------

    def play(self, *steps: Step) -> None:
        """Replace the script (and rewind)."""
        self.script, self._pos, self.exhausted = list(steps), 0, 0

    @property
    def played(self) -> int:
        return self._pos

    def auth(self, i: int = -1) -> str:
        """The bearer token of request ``i``."""
        value = self.requests[i].headers.get("Authorization", "")
        return value.removeprefix("Bearer ")

    # -- handler -----------------------------------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "request body is not JSON", "invalid_request_error")
        self.requests.append(Request(headers=dict(request.headers), body=body))
        if self._pos >= len(self.script):
            self.exhausted += 1
            return self._error(500, "script exhausted", "server_error")
        step = self.script[self._pos]
        self._pos += 1
        return await self._play(step, body)

    async def _play(self, step: Step, body: dict[str, Any]) -> web.StreamResponse:
        if step.kind == "delay":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), step.seconds)
            assert step.then is not None
            return await self._play(step.then, body)
        if step.kind == "status":
            kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(step.status, "server_error")
            text = step.text if isinstance(step.text, str) and step.text else f"scripted HTTP {step.status}"
            return self._error(step.status, text, kind)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if step.kind == "calls":
            message["tool_calls"] = [
                {"id": f"call_{next(self._ids)}", "type": "function", "function": {"name": n, "arguments": a}}
                for n, a in step.calls]
            finish = "tool_calls"
        elif step.kind == "refusal":
            message["refusal"] = step.text
        else:
            text = step.text(list(body.get("messages") or [])) if callable(step.text) else step.text
            message["content"] = text
        return web.json_response({
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or MODEL,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        })

    @staticmethod
    def _error(code: int, message: str, kind: str) -> web.Response:
        headers = {"Retry-After": "0"} if code == 429 else {}
        return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": kind}},
                                 status=code, headers=headers)
