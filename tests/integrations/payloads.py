"""Documented response bodies and SSE event sequences of the three SDKs' APIs, for the stub."""

from __future__ import annotations

from typing import Any

from .stub import Reply

GPT = "gpt-4o-mini"
CLAUDE = "claude-test-model"
GEMINI = "gemini-2.5-flash"


# -- OpenAI Responses: the whole documented event sequence of one text message ---------------
def response_body(text: str = "from responses", status: str = "completed") -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": GPT,
        "status": status,
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
        if status == "completed"
        else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 50,
            "input_tokens_details": {"cached_tokens": 10},
            "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 5},
            "total_tokens": 80,
        }
        if status == "completed"
        else None,
    }


def responses_stream(parts: list[str]) -> Reply:
    text = "".join(parts)
    item = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant",
            "content": []}  # fmt: skip
    part = {"type": "output_text", "text": "", "annotations": []}
    done_part = {**part, "text": text}
    done_item = {**item, "status": "completed", "content": [done_part]}
    seq = iter(range(100))
    events: list[tuple[str | None, Any]] = [
        ("response.created", {"type": "response.created", "sequence_number": next(seq),
                              "response": response_body(status="in_progress")}),
        ("response.output_item.added", {"type": "response.output_item.added",
                                        "sequence_number": next(seq), "output_index": 0,
                                        "item": item}),
        ("response.content_part.added", {"type": "response.content_part.added",
                                         "sequence_number": next(seq), "item_id": "msg_1",
                                         "output_index": 0, "content_index": 0, "part": part}),
    ]  # fmt: skip
    for delta in parts:
        events.append(("response.output_text.delta", {
            "type": "response.output_text.delta", "sequence_number": next(seq),
            "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": delta,
            "logprobs": []}))  # fmt: skip
    events += [
        ("response.output_text.done", {"type": "response.output_text.done",
                                       "sequence_number": next(seq), "item_id": "msg_1",
                                       "output_index": 0, "content_index": 0, "text": text,
                                       "logprobs": []}),
        ("response.content_part.done", {"type": "response.content_part.done",
                                        "sequence_number": next(seq), "item_id": "msg_1",
                                        "output_index": 0, "content_index": 0,
                                        "part": done_part}),
        ("response.output_item.done", {"type": "response.output_item.done",
                                       "sequence_number": next(seq), "output_index": 0,
                                       "item": done_item}),
        ("response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                "response": response_body(text)}),
    ]  # fmt: skip
    return Reply(events=events)


def embedding_body(tokens: int = 8) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# -- Anthropic ---------------------------------------------------------------------------------
ANTHROPIC_USAGE = {
    "input_tokens": 10,
    "output_tokens": 20,
    "cache_creation_input_tokens": 5,
    "cache_read_input_tokens": 100,
}


def message_body(text: str = "hello") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": CLAUDE,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }


def messages_stream(parts: list[str]) -> Reply:
    start = {**message_body(), "content": [], "stop_reason": None,
             "usage": {**ANTHROPIC_USAGE, "output_tokens": 1}}  # fmt: skip
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    ]  # fmt: skip
    for part in parts:
        delta = {"type": "text_delta", "text": part}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 42},
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return Reply(events=events)


# -- Google Gen AI (Gemini API, camelCase JSON) ------------------------------------------------
GEMINI_USAGE = {
    "promptTokenCount": 40,
    "candidatesTokenCount": 12,
    "cachedContentTokenCount": 16,
    "thoughtsTokenCount": 6,
    "totalTokenCount": 58,
}


def gemini_body(text: str = "hello", usage: dict[str, int] | None = None,
                finish: str | None = "STOP") -> dict[str, Any]:  # fmt: skip
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]},
                                 "index": 0}  # fmt: skip
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": GEMINI,
        "responseId": "resp-gemini-1",
    }
    if usage is not None:
        body["usageMetadata"] = usage
    return body


def gemini_stream(parts: list[str]) -> Reply:
    events: list[tuple[str | None, Any]] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        usage = GEMINI_USAGE if last else {"promptTokenCount": 40, "candidatesTokenCount": i + 1}
        events.append((None, gemini_body(part, usage, "STOP" if last else None)))
    return Reply(events=events)


def gemini_error(status: int, code: str, message: str, **headers: str) -> Reply:
    body: dict[str, Any] = {"error": {"code": status, "message": message, "status": code}}
    if "retry_delay" in headers:
        body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                     "retryDelay": headers.pop("retry_delay")}]  # fmt: skip
    return Reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()})
