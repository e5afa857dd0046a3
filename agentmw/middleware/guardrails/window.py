"""The held-back window of a guarded stream: chunks wait here until their text is checked."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentmw.guardrails.text import output_text, with_text

if TYPE_CHECKING:
    from agentmw.core.call import Call

__all__: list[str] = []  # the Guardrails layer's stream machinery


_SKIP = object()


def _plain(text: str | None, ends: frozenset[str]) -> bool:
    # ASCII text without any character a trigger ends with: it cannot complete a trigger.
    return text is not None and text.isascii() and ends.isdisjoint(text)


def common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of `a` and `b` (slice compares, no char loop)."""
    if len(a) > len(b):
        a, b = b, a
    size = len(a)
    if b.startswith(a):
        return size
    low, high = 0, size  # a[:low] == b[:low]; a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if b.startswith(a[low:middle], low):
            low = middle
        else:
            high = middle
    return low


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

    def push(self, chunk: Any) -> str | None:
        text = chunk if type(chunk) is str else output_text(chunk)
        self._held.append([chunk, text, text])
        if text:
            self._held_chars += len(text)
        return text

    def text(self) -> str:
        return "".join([entry[2] for entry in self._held if entry[2]])

    def set_text(self, new: str, *, prefix: int | None = None) -> None:
        """Replace the held text, keeping every chunk that lies wholly before the first change.

        `prefix`: the length of the common prefix of `new` and the held text, when known.
        """
        if prefix is None:
            prefix = common_prefix(self.text(), new)
        position, placed = 0, False
        texted = [entry for entry in self._held if entry[2] is not None]
        last = len(texted) - 1
        for index, entry in enumerate(texted):
            if placed:
                entry[2] = ""
                continue
            length = len(entry[2])
            if position + length > prefix or index == last:
                entry[2] = new[position:]
                placed = True
            position += length
        # The entries before the placed one keep `new[:position]` (the common prefix).
        self._held_chars = len(new) if texted else 0

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
        size = self.size
        if size is None:
            return []
        out = []
        held = self._held
        chars = self._held_chars
        while held:
            entry = held[0]
            text = entry[2]
            length = len(text) if text else 0
            if chars - length < size:
                break
            held.popleft()
            chars -= length
            if text is entry[1] and not self.keep_released:  # unchanged (the common case)
                self.released_chars += length
                out.append(entry[0])
                continue
            chunk = self._out(entry)
            if chunk is not _SKIP:
                out.append(chunk)
        self._held_chars = chars
        return out

    def drain(self) -> list[Any]:
        """Every held chunk (the stream ended and the final check passed)."""
        out = [self._out(entry) for entry in self._held]
        self._held.clear()
        self._held_chars = 0
        return [chunk for chunk in out if chunk is not _SKIP]


class GuardedStream:
    """One guarded stream: its window, and the replacements waiting to be reported.

    Both stream paths of `Guardrails` drive it the same way: `push_quiet` each chunk (then
    `held`, the text to check, unless it needs none), `release` what the check allows, then
    `held`/`settle` the final window (unless `quiet`), check `whole()` for whole-output guards,
    and `drain`.
    """

    __slots__ = (
        "_change",
        "_ends",
        "_first",
        "_held_text",
        "_last",
        "_overlap",
        "_since",
        "_tail",
        "call",
        "pending",
        "reported",
        "window",
    )

    def __init__(
        self,
        call: Call,
        size: int | None,
        *,
        keep_released: bool,
        trigger: re.Pattern[str] | None = None,
        overlap: int = 0,
        ends: frozenset[str] | None = None,
        change: Callable[[str], int | None] | None = None,
    ) -> None:
        self.call = call
        self.window = OutputWindow(size, keep_released=keep_released)
        self.pending: list[str] = []  # guards whose replacement the last check produced
        self.reported: set[str] = set()
        # The fast path (every guard has a `stream_trigger`): `_last(text)` matches up to the
        # start of the last trigger in `text`; `_since` counts the held characters from that
        # start to the end (None: no trigger seen); `_tail` is the text a trigger may continue.
        self._last = trigger.match if trigger is not None else None
        self._ends = ends
        self._overlap = overlap
        self._since: int | None = None
        self._tail = ""
        # With a lone replace-only guard, `_change(piece)` bounds where its check can first
        # change text because of `piece` (`stream_first_change`); `_first` is the smallest
        # bound over the scanned pieces, as a stream position (None: nothing to change). A
        # check whose changes would all lie in the held-back tail is skipped, since `_apply`
        # would keep the original text anyway.
        self._change = change
        self._first: int | None = None
        self._held_text: str | None = None  # the held text `push_quiet` joined for `held()`

    def push_quiet(self, chunk: Any) -> list[Any] | None:
        """Hold `chunk`; when the held text provably needs no check (no trigger lies in it),
        the chunks that may reach the consumer now, else None (check `held()` first).

        Only the chunk's text and the `overlap` characters before it are scanned.
        """
        window = self.window
        self._held_text = None
        ends = self._ends
        if type(chunk) is str:
            length = len(chunk)
            window._held.append([chunk, chunk, chunk])
            window._held_chars += length
            if ends is not None and chunk.isascii() and ends.isdisjoint(chunk):
                # The common case: ASCII text without any character a trigger ends with cannot
                # complete a trigger; it is held and only counted.
                overlap = self._overlap
                if not overlap:
                    self._tail = ""
                elif length >= overlap:
                    self._tail = chunk[-overlap:]
                else:
                    self._tail = (self._tail + chunk)[-overlap:]
                since = self._since
                if since is None:
                    return window.release()
                self._since = since = since + length
                if since > window._held_chars:
                    return window.release()
                return self._decide()
            text: str | None = chunk
            plain = False  # it holds an end character (or is not ASCII): scanned below
        else:
            text = window.push(chunk)
            plain = ends is not None and _plain(text, ends)
        last = self._last
        if last is None:
            return None
        if text:
            overlap = self._overlap
            # No new trigger can end in ASCII text without one of its end characters; else
            # the last trigger is looked for (one match: a text that holds an end character
            # usually holds a trigger too, and a plain search first would then cost twice).
            if plain:
                if self._since is not None:
                    self._since += len(text)
                if not overlap:
                    self._tail = ""
                elif len(text) >= overlap:
                    self._tail = text[-overlap:]
                else:
                    self._tail = (self._tail + text)[-overlap:]
            else:
                scanned = self._tail + text
                found = last(scanned)
                if found is not None:
                    self._since = len(scanned) - found.end()
                    change = self._change
                    if change is not None:
                        bound = change(scanned)
                        if bound is not None:
                            # The piece ends where the stream now ends.
                            end = window.released_chars + window._held_chars
                            at = end - len(scanned) + bound
                            first = self._first
                            self._first = at if first is None or at < first else first
                elif self._since is not None:
                    self._since += len(text)
                self._tail = scanned[-overlap:] if overlap else ""
        since = self._since
        if since is not None and since <= window._held_chars:
            return self._decide()
        return window.release()

    def _decide(self) -> list[Any] | None:
        # A trigger lies in the held text: check it (None), unless the lone guard certainly
        # changes nothing before the held-back tail (then the check would commit nothing, and
        # with "full" every mid-stream change is kept back).
        change = self._change
        if change is None:
            return None
        window = self.window
        size = window.size
        if size is not None:
            released = window.released_chars
            boundary = released + window._held_chars - size  # where the held-back tail starts
            first = self._first
            if first is not None and released <= first < boundary:
                # A bound inside the held text is exact: the piece that gave it still lies
                # there, and every held trigger lies in a piece scanned since (so asking about
                # the whole held text would give the same bound). Check.
                return None
            if first is not None and first < boundary:
                # Stale (its piece may have been released) or unknown: ask about the whole
                # held text (nothing lies before it, so a bound before its start is its start).
                held = window.text()
                bound = change(held)
                self._first = first = None if bound is None else released + max(bound, 0)
                if first is not None and first < boundary:
                    self._held_text = held
                    return None
        return window.release()

    def quiet(self) -> bool:
        """True when no trigger lies wholly inside the held text (its check would allow it)."""
        since = self._since
        return self._last is not None and (since is None or since > self.window._held_chars)

    def _rescan(self, held: str) -> None:
        # The held text was rewritten to `held` (a redaction): find its last trigger afresh.
        last = self._last
        if last is None:
            return
        ends = self._ends
        if ends is not None and held.isascii() and ends.isdisjoint(held):
            self._since = None  # no trigger can end in it
        else:
            found = last(held)
            self._since = None if found is None else len(held) - found.end()
        self._tail = held[-self._overlap :] if self._overlap else ""
        change = self._change
        if change is not None:
            bound = change(held) if self._since is not None else None
            self._first = None if bound is None else self.window.released_chars + max(bound, 0)

    def held(self) -> str:
        """The held-back text to check (and how much was released before it, for `MaxLength`)."""
        self.call.stream_offset = self.window.released_chars
        held, self._held_text = self._held_text, None
        return held if held is not None else self.window.text()

    def release(self, held: str, checked: Any) -> list[Any]:
        """Apply the check of `held` mid-stream; the chunks that may now reach the consumer."""
        self._apply(held, checked, final=False)
        return self.window.release()

    def settle(self, held: str, checked: Any) -> None:
        """Apply the final check (the stream ended)."""
        self._apply(held, checked, final=True)

    def whole(self) -> str:
        """Everything the stream produced (for guards that need the whole output)."""
        return "".join(self.window.released) + self.window.text()

    def drain(self) -> list[Any]:
        return self.window.drain()

    def _apply(self, held: str, value: Any, *, final: bool) -> None:
        window = self.window
        guards, self.pending = self.pending, []
        if not isinstance(value, str) or value == held:
            return
        prefix = common_prefix(held, value)
        if not final:
            # A change inside the held-back tail may be a partial match (half a card number
            # looks like a phone number): keep the original; it is checked again with more text.
            boundary = len(held) - window.size if window.size is not None else 0
            if prefix >= boundary:
                return
        window.set_text(value, prefix=prefix)  # `held` is the window's text
        self._rescan(value)
        for name in dict.fromkeys(guards):
            if name not in self.reported:
                self.reported.add(name)
                self.call.emit("guardrail.replaced", stage="output", guard=name)
