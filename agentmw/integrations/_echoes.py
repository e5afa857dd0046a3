"""OpenAI Responses streams repeat their text: keep the repeats equal to the guarded deltas.

A Responses stream sends the text as `response.output_text.delta` events, then again whole in
`response.output_text.done`, `response.content_part.done`, `response.output_item.done` and the
final `response.completed` (which `responses.stream().get_final_response()` returns). Guardrails
check and rewrite the deltas; this rewrites the repeats after them from the released deltas, so
a redacted text never comes back through a repeat.
"""

from __future__ import annotations

from typing import Any

from agentmw.usage import RESPONSES_TEXT_DELTA

__all__: list[str] = []  # internal: the stream chunks of the OpenAI integration

_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _with(obj: Any, **update: Any) -> Any:
    return obj.model_copy(update=update)


class ResponseEchoes:
    """Called on each chunk that leaves the stack; returns the chunk to hand to the consumer."""

    __slots__ = ("_texts",)

    def __init__(self) -> None:
        self._texts: dict[tuple[int, int], str] = {}

    def __call__(self, chunk: Any) -> Any:
        kind = getattr(chunk, "type", None)
        texts = self._texts
        if kind == RESPONSES_TEXT_DELTA:
            key = (chunk.output_index, chunk.content_index)
            texts[key] = texts.get(key, "") + chunk.delta
            return chunk
        if not texts or not isinstance(kind, str):
            return chunk
        if kind == "response.output_text.done":
            text = texts.get((chunk.output_index, chunk.content_index))
            return chunk if text is None or text == chunk.text else _with(chunk, text=text)
        if kind == "response.content_part.done":
            part = self._part(chunk.part, chunk.output_index, chunk.content_index)
            return chunk if part is chunk.part else _with(chunk, part=part)
        if kind == "response.output_item.done":
            item = self._item(chunk.item, chunk.output_index)
            return chunk if item is chunk.item else _with(chunk, item=item)
        if kind in _FINAL:
            response = chunk.response
            output = [self._item(item, i) for i, item in enumerate(response.output)]
            if all(a is b for a, b in zip(output, response.output, strict=True)):
                return chunk
            return _with(chunk, response=_with(response, output=output))
        return chunk

    def _part(self, part: Any, output: int, index: int) -> Any:
        text = self._texts.get((output, index))
        if getattr(part, "type", None) != "output_text" or text is None or text == part.text:
            return part
        return _with(part, text=text)

    def _item(self, item: Any, output: int) -> Any:
        if getattr(item, "type", None) != "message":
            return item
        content = [self._part(p, output, i) for i, p in enumerate(item.content)]
        if all(a is b for a, b in zip(content, item.content, strict=True)):
            return item
        return _with(item, content=content)
