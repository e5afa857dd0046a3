"""Streaming `PIIRedactor` catches exactly what the whole-window check catches, at every split.

The reference is the redaction as it was before streams scanned incrementally: every pattern run
in order over the whole held-back window after each chunk (`ReferenceRedactor`, a guard without
the stream fast path, so the layer checks its whole window every time). Each corpus text is
streamed split at every offset (two pieces) and in fixed-size chunks at every phase; the chunks,
the joined text, the events and (for "block") the error and what arrived before it must match
the reference, sync and async.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agentmw import GuardrailViolation, Stack, agent_turn
from agentmw.core.call import Call
from agentmw.guardrails import PIIRedactor, TextGuardrail, Verdict
from agentmw.guardrails.pii import _KINDS, _mask
from agentmw.middleware import Guardrails
from agentmw.testing import capture_events

CARD = "4111 1111 1111 1111"
CORPUS = [
    "Write to bob.smith@example.co.uk or call +1 415-555-0100 before noon.",
    f"My card is {CARD}, not 4111 1111 1111 1112 (that one fails Luhn).",
    "SSN 123-45-6789 and also 000-12-3456 which is not one; ok 078-05-1120.",
    "Servers at 10.0.0.1, 192.168.1.254 and 256.1.1.1; version 1.2.3 is fine.",
    "IBAN GB82 WEST 1234 5698 7654 32 and DE89370400440532013000 please pay.",
    "In 2024 we had 12 meetings; room 4711, call (030) 123 4567 or x@y.io now.",
    "plain prose with no personal data at all, just words and punctuation.",
    "edge: a@b.cc,415.555.0100;4012888888881881|1.1.1.1 123-45-6789 end",
    "Unicode digits count too: \u0664\u0661\u0665-\u0665\u0665\u0665-\u0660\u0661\u0660\u0660 ok.",
]
STRATEGIES = ["redact", "mask", "block"]
WINDOWS = [64, 16]


class ReferenceRedactor(TextGuardrail):
    """The redaction of the previous release: each pattern in turn over the whole text."""

    name = "PIIRedactor"

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self.stages = None
        self._rx = [(k, re.compile(p), v) for k, (p, v) in _KINDS.items()]

    def _sub(self, kind: str, value: str) -> str:
        return _mask(value) if self.strategy == "mask" else f"[REDACTED:{kind}]"

    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        if self.strategy == "block":
            found = sorted(
                {
                    k
                    for k, rx, valid in self._rx
                    for m in rx.finditer(text)
                    if valid is None or valid(m.group())
                }
            )
            return Verdict.block("pii: " + ", ".join(found)) if found else Verdict.allow()
        new = text
        for kind, rx, valid in self._rx:

            def sub(match: re.Match[str], kind: str = kind, valid: Any = valid) -> str:
                value = match.group()
                if valid is not None and not valid(value):
                    return value
                return self._sub(kind, value)

            new = rx.sub(sub, new)
        return Verdict.allow() if new == text else Verdict.replace(new)


def splits(text: str) -> Iterator[list[str]]:
    """Two pieces split at every offset, then fixed-size chunks (1, 3, 7, 20) at every phase."""
    for cut in range(1, len(text)):
        yield [text[:cut], text[cut:]]
    for size in (1, 3, 7, 20):
        for phase in range(1, size + 1):
            first = text[:phase]
            rest = text[phase:]
            yield [first] + [rest[i : i + size] for i in range(0, len(rest), size)]


def run(path: str, guard: Any, window: int | str, pieces: list[str]) -> tuple[Any, ...]:
    """Stream `pieces` through `Guardrails([guard])`: (chunks, error, replaced events)."""
    stack = Stack([Guardrails([guard], stream_window=window)])
    received: list[str] = []
    error: tuple[Any, ...] | None = None
    with capture_events() as events:
        try:
            if path == "stream":

                def gen() -> Iterator[str]:
                    yield from pieces

                received.extend(agent_turn(stack=stack)(gen)())
            else:

                async def agen() -> AsyncIterator[str]:
                    for piece in pieces:
                        yield piece

                async def collect() -> None:
                    async for chunk in agent_turn(stack=stack)(agen)():
                        received.append(chunk)

                asyncio.run(collect())
        except GuardrailViolation as exc:
            error = (exc.stage, exc.violations)
    replaced = [(e.data["stage"], e.data["guard"]) for e in events.named("guardrail.replaced")]
    return received, error, replaced


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("window", WINDOWS)
def test_stream_matches_the_whole_window_reference_at_every_split(
    strategy: str, window: int
) -> None:
    fast, reference = PIIRedactor(strategy=strategy), ReferenceRedactor(strategy)
    for text in CORPUS:
        whole = PIIRedactor(strategy=strategy)
        for pieces in splits(text):
            got = run("stream", fast, window, pieces)
            want = run("stream", reference, window, pieces)
            assert got == want, (text, pieces)
            received, error, _ = got
            if error is None and strategy != "block" and window == 64:
                # Findings shorter than the window never straddle it: the stream redacts like
                # the whole text. (A 16-character window can release half an e-mail address.)
                assert "".join(received) == whole.redact(text), (text, pieces)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_async_stream_matches_the_reference(strategy: str) -> None:
    fast, reference = PIIRedactor(strategy=strategy), ReferenceRedactor(strategy)
    for text in CORPUS:
        for size in (1, 7, 20):
            pieces = [text[i : i + size] for i in range(0, len(text), size)]
            got = run("astream", fast, 64, pieces)
            assert got == run("astream", reference, 64, pieces), (text, pieces)
            assert got == run("stream", fast, 64, pieces), (text, pieces)


def test_corpus_is_caught_as_today() -> None:
    """Whole-text redaction of the corpus, pinned (what both implementations must produce)."""
    redactor = PIIRedactor()
    out = [redactor.redact(text) for text in CORPUS]
    assert out[0] == "Write to [REDACTED:email] or call [REDACTED:phone] before noon."
    assert out[1] == (
        "My card is [REDACTED:credit_card], not 4111 1111 1111 1112 (that one fails Luhn)."
    )
    assert out[2] == (
        "SSN [REDACTED:ssn] and also 000-12-3456 which is not one; ok [REDACTED:ssn]."
    )
    assert out[3] == (
        "Servers at [REDACTED:ipv4], [REDACTED:ipv4] and 256.1.1.1; version 1.2.3 is fine."
    )
    assert out[4].startswith("IBAN [REDACTED:iban] and [REDACTED:iban] please pay.")
    assert out[5] == (
        "In 2024 we had 12 meetings; room 4711, call [REDACTED:phone] or [REDACTED:email] now."
    )
    assert out[6] == CORPUS[6]
    assert out[7] == (
        "edge: [REDACTED:email],[REDACTED:phone];[REDACTED:credit_card]|[REDACTED:ipv4] "
        "[REDACTED:ssn] end"
    )
    assert out[8] == "Unicode digits count too: [REDACTED:phone] ok."
    reference = ReferenceRedactor("redact")
    for text, redacted in zip(CORPUS, out, strict=True):
        verdict = reference.check_text(text, "output", None)  # type: ignore[arg-type]
        assert redacted == (verdict.value if verdict.action == "replace" else text)


class CountingRedactor(PIIRedactor):
    """Counts whole-window checks (keeps the fast path: `check_text` is not overridden)."""

    checked = 0

    def redact(self, text: str) -> str:
        CountingRedactor.checked += 1
        return super().redact(text)


class CustomRedactor(PIIRedactor):
    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        return Verdict.replace(text.replace("hello", "HELLO"))


@pytest.mark.parametrize("path", ["stream", "astream"])
def test_quiet_windows_are_not_checked(path: str) -> None:
    assert PIIRedactor().stream_trigger == r"@|\d[ .\-]?\d"
    assert PIIRedactor(["email"]).stream_trigger == "@"
    assert (PIIRedactor().stream_ends, PIIRedactor(["email"]).stream_ends) == ("@0123456789", "@")
    assert PIIRedactor(["ssn"]).stream_ends == "0123456789"
    # A subclass that changes what is found loses the fast path (it is checked as before).
    assert CountingRedactor().stream_trigger is None
    assert CustomRedactor().stream_trigger is None
    prose = "no personal data here, only words. " * 4
    CountingRedactor.checked = 0
    pieces = [prose[i : i + 20] for i in range(0, len(prose), 20)]
    received, error, replaced = run(path, CustomRedactor(), 64, ["hello ", *pieces])
    assert "".join(received) == "HELLO " + prose
    assert (error, replaced) == (None, [("output", "CustomRedactor")])
    # The fast path: PIIRedactor's own methods, and one check per chunk while an address is held.
    counted = PIIRedactor()
    counted.redact = CountingRedactor().redact  # type: ignore[method-assign]
    text = prose + "mail a@b.io " + prose
    pieces = [text[i : i + 20] for i in range(0, len(text), 20)]
    received, error, replaced = run(path, counted, 64, pieces)
    assert "".join(received) == prose + "mail [REDACTED:email] " + prose
    assert replaced == [("output", "PIIRedactor")]
    # One check: of the window where the address is about to be released. None before the
    # "@" arrives, none while it could only change the held-back tail (`stream_first_change`:
    # the change would be kept back), none after the redaction; no final check either.
    assert CountingRedactor.checked == 1, CountingRedactor.checked


@pytest.mark.parametrize("path", ["stream", "astream"])
def test_a_guard_without_trigger_keeps_every_window_checked(path: str) -> None:
    seen: list[str] = []

    class Spy(TextGuardrail):
        def check_text(self, text: str, stage: str, call: Call) -> Verdict:
            seen.append(text)
            return Verdict.allow()

    prose = "no personal data here, only words. " * 3
    pieces = [prose[i : i + 20] for i in range(0, len(prose), 20)]
    stack = Stack([Guardrails([PIIRedactor(), Spy()], stream_window=64)])
    received: list[str] = []
    if path == "stream":

        def gen() -> Iterator[str]:
            yield from pieces

        received = list(agent_turn(stack=stack)(gen)())
    else:

        async def agen() -> AsyncIterator[str]:
            for piece in pieces:
                yield piece

        async def collect() -> None:
            async for chunk in agent_turn(stack=stack)(agen)():
                received.append(chunk)

        asyncio.run(collect())
    assert received == pieces
    assert len(seen) == len(pieces) + 1  # every chunk's window, then the final one


@pytest.mark.parametrize("path", ["stream", "astream"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_full_window_matches_the_reference(path: str, strategy: str) -> None:
    fast, reference = PIIRedactor(strategy=strategy), ReferenceRedactor(strategy)
    for text in CORPUS:
        for size in (1, 7):
            pieces = [text[i : i + size] for i in range(0, len(text), size)]
            got = run(path, fast, "full", pieces)
            assert got == run(path, reference, "full", pieces), (text, pieces)


def test_first_change_bounds_where_a_redaction_can_start() -> None:
    first = PIIRedactor().stream_first_change
    assert first is not None
    assert first("no personal data here") is None
    assert first("call 12 now") == 1  # two digits at 5: a phone can start 4 before ("+1 (0")
    assert first("12 and more") == -4  # before the piece: the stream places it
    assert first("mail dana.lee@example.org") == 5  # the local part's run
    assert first("lee@example.org") == -sys.maxsize  # the run may begin in earlier text
    emails = PIIRedactor(["email"]).stream_first_change
    assert emails is not None
    assert emails("x 12 y") is None
    # Only a replacing PIIRedactor with its own finding methods has the hook.
    assert PIIRedactor(strategy="block").stream_first_change is None
    assert CustomRedactor().stream_first_change is None
    assert CountingRedactor().stream_first_change is None
    for strategy in ("redact", "mask", "hash"):
        guard = PIIRedactor(strategy=strategy)
        assert guard.stream_first_change is not None
        for text in CORPUS:
            bound = guard.stream_first_change(text)
            new = guard.redact(text)
            if bound is None:
                assert new == text
            else:
                assert new[: max(bound, 0)] == text[: max(bound, 0)], (strategy, text)


class CountingBlocker(PIIRedactor):
    checked = 0

    def find(self, text: str) -> list[tuple[str, str]]:
        CountingBlocker.checked += 1
        return super().find(text)


@pytest.mark.parametrize("path", ["stream", "astream"])
def test_block_and_full_windows_keep_their_checks(path: str) -> None:
    prose = "no personal data here, only words. " * 4
    text = prose + "mail a@b.io " + prose
    pieces = [text[i : i + 20] for i in range(0, len(text), 20)]
    # "block" must see every window holding the "@" (the first sight blocks): no skipping.
    blocker = PIIRedactor(strategy="block")
    blocker.find = CountingBlocker().find  # type: ignore[method-assign]
    CountingBlocker.checked = 0
    received, error, _ = run(path, blocker, 64, pieces)
    assert error == ("output", (("PIIRedactor", "pii: email"),))
    assert CountingBlocker.checked == 1
    assert "".join(received) == text[: len(received) * 20]
    # A "full" window keeps every mid-stream change back: only the final check runs.
    counted = PIIRedactor()
    counted.redact = CountingRedactor().redact  # type: ignore[method-assign]
    CountingRedactor.checked = 0
    received, error, replaced = run(path, counted, "full", pieces)
    assert "".join(received) == prose + "mail [REDACTED:email] " + prose
    assert (error, replaced, CountingRedactor.checked) == (None, [("output", "PIIRedactor")], 1)
