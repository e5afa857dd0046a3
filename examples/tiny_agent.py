"""A tiny agent loop, offline: a writer calls two tools, then hands the draft to an editor.

The model is `agentmw.testing.ScriptedModel`, so this runs without network or API keys.
Run it with `make demo`.
"""

from __future__ import annotations

import json
from typing import Any

from agentmw import Agent, Stack, Usage, agent_tool, agent_turn
from agentmw.middleware import Timeout
from agentmw.testing import Reply, ScriptedModel

DRAFT = "agentmw wraps every model turn and tool call in ordered middleware."
WRITER_MODEL = ScriptedModel(
    [
        Reply(
            "Let me look that up.",
            Usage(input_tokens=42, output_tokens=9, tool_calls=1),
            tool_calls=({"name": "search", "args": {"q": "agentmw"}},),
        ),
        Reply(
            "Counting words.",
            Usage(input_tokens=61, output_tokens=7, tool_calls=1),
            tool_calls=({"name": "word_count", "args": {"text": DRAFT}},),
        ),
        DRAFT,
    ],
    model="writer-model",
)
EDITOR_MODEL = ScriptedModel(["Approved with one edit: say 'layers'."], model="editor-model")

DOCS = {"agentmw": "agentmw runs agent loops through ordered middleware layers."}


@agent_turn(model="writer-model")
def write(prompt: str, history: list[str]) -> Reply:
    return WRITER_MODEL(prompt, history=history)


@agent_turn(model="editor-model")
def edit(draft: str) -> Reply:
    return EDITOR_MODEL(draft)


@agent_tool
def search(q: str) -> str:
    return DOCS.get(q, "no results")


@agent_tool
def word_count(text: str) -> int:
    return len(text.split())


TOOLS = {"search": search, "word_count": word_count}


def run_writer(agent: Agent, editor: Agent) -> Any:
    history: list[str] = []
    with agent.session() as session:
        for _ in range(5):  # a small loop: model turn, then any tool calls it asked for
            reply = write("Write one sentence about agentmw.", history)
            if not reply.tool_calls:
                break
            for tool_call in reply.tool_calls:
                history.append(str(TOOLS[tool_call["name"]](**tool_call["args"])))
        handoff = session.handoff_to(
            editor, reason="draft ready for review", context={"draft": reply.text}
        )
    print_summary("writer", session.summary())
    return handoff


def print_summary(title: str, summary: dict[str, Any]) -> None:
    print(f"== {title} session ==")
    shown = {k: summary[k] for k in ("role", "state", "turns", "tool_calls", "usage", "events")}
    print(json.dumps(shown, indent=2, default=str))


def main() -> None:
    stack = Stack([Timeout(10.0)])
    writer = Agent("writer", project_id="demo", stack=stack)
    editor = Agent("editor", project_id="demo", stack=stack)
    print("stack:\n" + stack.describe())

    handoff = run_writer(writer, editor)
    print(f"handoff: {handoff.source_role} -> {handoff.target_role} ({handoff.reason})")

    with editor.session(handoff=handoff) as session:
        verdict = edit(session.handoff["draft"] if session.handoff else "")
        print(f"editor says: {verdict.text}")
    print_summary("editor", session.summary())


if __name__ == "__main__":
    main()
