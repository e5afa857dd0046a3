"""A scripted LangChain chat model: replies in order, requests tools, reports usage, streams."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr


def reply(
    text: str = "",
    *,
    tools: Sequence[tuple[str, dict[str, Any]]] = (),
    input_tokens: int = 100,
    output_tokens: int = 20,
    cache_read: int = 0,
    cache_creation: int = 0,
    reasoning: int = 0,
    first_id: int = 1,
) -> AIMessage:
    """An AIMessage requesting `tools` (name, args) with ids call_<n>, and usage metadata."""
    return AIMessage(
        content=text,
        tool_calls=[
            {"name": name, "args": args, "id": f"call_{first_id + i}", "type": "tool_call"}
            for i, (name, args) in enumerate(tools)
        ],
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_token_details": {"cache_read": cache_read, "cache_creation": cache_creation},
            "output_token_details": {"reasoning": reasoning},
        },
    )


class ScriptedChatModel(BaseChatModel):
    """Returns `replies` in order (raises an exception reply, or when they run out) and records
    each request.

    `_stream` splits the text into word chunks, then sends the tool calls and the usage in a
    last chunk, as provider streams do.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[Any]  # AIMessages, or exceptions to raise
    model_name: str = "lc-test-model"
    requests: list[list[BaseMessage]] = Field(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        with self._lock:
            self.requests.append(list(messages))
            if not self.replies:
                raise RuntimeError("ScriptedChatModel has no reply left")
            item = self.replies.pop(0)
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, AIMessage)
        return item

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._next(messages)
        assert isinstance(message.content, str)
        for token in [t for t in re.split(r"(\s)", message.content) if t]:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        last = AIMessageChunk(
            content="",
            tool_call_chunks=[
                tool_call_chunk(name=c["name"], args=_json(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(message.tool_calls)
            ],
            usage_metadata=message.usage_metadata,
            chunk_position="last",
        )
        chunk = ChatGenerationChunk(message=last)
        if run_manager:
            run_manager.on_llm_new_token("", chunk=chunk)
        yield chunk


def _json(args: dict[str, Any]) -> str:
    import json

    return json.dumps(args)
