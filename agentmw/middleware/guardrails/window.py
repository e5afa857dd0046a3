"""The held-back window of a guarded stream: chunks wait here until their text is checked."""

from __future__ import annotations

from collections import deque
from typing import Any

from agentmw.guardrails.text import output_text, with_text

_SKIP = object()


class OutputWindow:
    """Holds streamed chunks until at least `size` characters of checked text follow them.

    `size=None` holds everything until the stream ends. Guards check `text()`; a redaction is
    written back with `set_text()`, which keeps the chunk boundaries before the first change.
    """

    __slots__ = ("_held", "_held_chars", "keep_released", "released", "released_chars", "size")

    def __init__(self, size: int | None, *, keep_released: bool = False) -> None:
        self.size = size
        self._held: deque[list[Any]] = deque()
        self._held_chars = 0
        self.released_chars = 0
        self.keep_released = keep_released
        self.released: list[str] = []

    def push(self, chunk: Any) -> None:
        text = output_text(chunk)
        self._held.append([chunk, text, text])
        self._held_chars += len(text or "")

    def text(self) -> str:
        return "".join(entry[2] for entry in self._held if entry[2])

    def set_text(self, new: str) -> None:
        """Replace the held text, keeping every chunk that lies wholly before the first change."""
        old = self.text()
        prefix = 0
        limit = min(len(old), len(new))
        while prefix < limit and old[prefix] == new[prefix]:
            prefix += 1
        position, placed = 0, False
        texted = [entry for entry in self._held if entry[2] is not None]
        for index, entry in enumerate(texted):
            length = len(entry[2])
            last = index == len(texted) - 1
            if not placed and (position + length > prefix or last):
                entry[2] = new[position:]
                placed = True
            elif placed:
                entry[2] = ""
            position += length
        self._held_chars = sum(len(entry[2] or "") for entry in self._held)

    def _out(self, entry: list[Any]) -> Any:
        chunk, original, text = entry
        length = len(text or "")
        self.released_chars += length
        if self.keep_released and text:
            self.released.append(text)
        if text == original:
            return chunk
        if isinstance(chunk, str) and not text:
            return _SKIP  # a string chunk whose text moved into an earlier chunk
        return with_text(chunk, text)

    def release(self) -> list[Any]:
        """Chunks that now have at least `size` checked characters after them."""
        if self.size is None:
            return []
        out = []
        held = self._held
        while held and self._held_chars - len(held[0][2] or "") >= self.size:
            entry = held.popleft()
            self._held_chars -= len(entry[2] or "")
            chunk = self._out(entry)
            if chunk is not _SKIP:
                out.append(chunk)
        return out

    def drain(self) -> list[Any]:
        """Every held chunk (the stream ended and the final check passed)."""
        out = [self._out(entry) for entry in self._held]
        self._held.clear()
        self._held_chars = 0
        return [chunk for chunk in out if chunk is not _SKIP]
