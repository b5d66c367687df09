"""What an ask produces, whichever way it was answered (offline router or LLM).

The same object feeds every surface: the chat card, ``costdna ask --json`` and the thread context a
follow-up in the same Slack thread starts from. ``figures`` are the numbers the text quotes, by name
(money rounded to cents), so a test or another tool can check them without parsing prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    question: str
    title: str
    text: str
    tools: list[str] = field(default_factory=list)  # names of the tools called, in order
    citations: list[str] = field(default_factory=list)  # resource ids (or ARNs) the answer rests on
    figures: dict[str, float] = field(default_factory=dict)
    mode: str = "offline"  # offline | llm | fallback (the LLM's answer was replaced by the offline one)
    note: str = ""  # why, when something was replaced or left out
    context: dict[str, Any] = field(default_factory=dict)  # what a follow-up in the same thread needs
    ok: bool = True  # False: no evidence to answer from (the text says why)

    def to_json(self) -> dict[str, Any]:
        """The ``costdna ask --json`` object."""
        return {"question": self.question, "answer": self.text, "title": self.title, "tools": list(self.tools),
                "citations": list(self.citations), "figures": dict(self.figures), "mode": self.mode,
                "note": self.note, "ok": self.ok}
