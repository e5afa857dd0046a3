"""`PIIRedactor`: finds personal data in text and redacts, masks, hashes or blocks it."""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Callable, Iterable

from agentmw._validate import check_choice
from agentmw.core.call import Call
from agentmw.guardrails.base import TextGuardrail, Verdict, _check_stages, strings

__all__ = ["PIIRedactor"]

STRATEGIES = ("redact", "mask", "hash", "block")


_DOUBLE = str.maketrans("0123456789", "0246813579")  # a digit doubled, less 9 above 9


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every real payment card number satisfies."""
    if digits.isascii() and digits.isdigit():  # ASCII digits: summed as bytes
        backwards = digits[::-1]
        total = sum(backwards[::2].encode()) + sum(backwards[1::2].translate(_DOUBLE).encode())
        return (total - 48 * len(digits)) % 10 == 0
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_ok(match: str) -> bool:
    digits = match.replace(" ", "").replace("-", "")  # all a card match holds besides digits
    if not digits.isdecimal():  # `isdecimal` is exactly what `\d` matches
        digits = re.sub(r"\D", "", match)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _iban_ok(match: str) -> bool:
    code = match.replace(" ", "").upper()
    moved = code[4:] + code[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# Checked in this order, so a card number is never half-eaten by the phone pattern. The card
# and SSN patterns consume their first digit before looking behind it (`\d(?<!\d\d)` is
# `(?<!\d)\d`), so the regex engine skips to digits instead of trying every position. The
# card's lookahead holds for every card match (at least 12 digits and separators follow its
# first digit), so it only turns a phone number away sooner; its separator is possessive
# (`[ -]?+`) because a separator left unconsumed is never the digit that step needs: the same
# matches, without backtracking into each step.
_KINDS: dict[str, tuple[str, Callable[[str], bool] | None]] = {
    "iban": (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", _iban_ok),
    "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", None),
    "credit_card": (r"\d(?<!\d\d)(?=[\d -]{12})(?:[ -]?+\d){12,18}(?!\d)", _card_ok),
    "ssn": (r"\d(?<!\d\d)\d\d(?<!000|666|9\d\d)-(?!00)\d{2}-(?!0000)\d{4}(?!\d)", None),
    "phone": (
        r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?"
        r"\d{3,4}(?!\w)(?![ .-]\d)",
        None,
    ),
    "ipv4": (
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
        r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)",
        None,
    ),
}
KINDS = tuple(_KINDS)

# What every match of a kind but e-mail contains (a necessary substring): text without it
# cannot hold that kind, so its pattern need not run. Each holds a digit; an IBAN's starts two
# characters before it. The SSN's and IPv4's begin with their "-" or "." (the digits before it
# looked behind for), so the regex engine jumps from one such character to the next; looking
# behind past where a scan resumes can only find a trigger that starts the scan earlier.
_TRIGGERS: dict[str, str] = {
    "iban": r"[A-Z][A-Z]\d\d",
    "credit_card": r"\d[ -]?\d",
    "ssn": r"-(?<=\d{3}-)\d\d-\d{4}",
    "phone": r"\d\d",
    "ipv4": r"\.(?<=\d\.)\d",
}
# How far before the first match of its trigger a kind's match can start (the trigger's offset
# in its earliest possible match: a phone's "+1 (03", an IPv4's "192.", an SSN's "123").
# Scanning from there finds exactly the matches a scan from the start finds: none can start
# earlier.
_LEADS: dict[str, int] = {"iban": 0, "credit_card": 0, "ssn": 3, "phone": 4, "ipv4": 3}
_BACK: dict[str, int] = {"iban": 2}  # how far before the first digit the trigger can start


def _both(pattern: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """`pattern` compiled as written and with `re.ASCII`, which matches ASCII text exactly as
    the first does (digits, word characters and word boundaries are the same on ASCII
    characters; no pattern here uses whitespace classes or ignores case) and is faster."""
    return re.compile(pattern), re.compile(pattern, re.ASCII)


_PAIRS = tuple(p.search for p in _both(r"\d[ .\-]?\d"))  # two digits a separator apart at most
_LOCAL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-"


def _email_start(text: str, begin: int = 0) -> int | None:
    # An e-mail match starts inside the run of local-part characters before an "@"; the
    # earliest such run (from `begin` on) is the one before the first "@" after `begin`.
    at = text.find("@", begin)
    if at < 0:
        return None
    return begin + len(text[begin:at].rstrip(_LOCAL))  # where that run starts


_Trigger = Callable[[str, int], "re.Match[str] | None"]
# Each kind's pattern, its validator, and where its scan may start: its trigger's search (None:
# the e-mail run before the first "@"), how far before the first digit that trigger can start,
# and how far before the trigger a match can.
_Entry = tuple[str, re.Pattern[str], Callable[[str], bool] | None, _Trigger | None, int, int]


def _entries(kind: str) -> tuple[_Entry, _Entry]:
    """`kind`'s entry for any text, and for ASCII text."""
    pattern, valid = _KINDS[kind]
    back, lead = _BACK.get(kind, 0), _LEADS.get(kind, 0)
    unicode, ascii = _both(pattern)
    if kind == "email":
        return (kind, unicode, valid, None, back, lead), (kind, ascii, valid, None, back, lead)
    found, ascii_found = (t.search for t in _both(_TRIGGERS[kind]))
    return (kind, unicode, valid, found, back, lead), (kind, ascii, valid, ascii_found, back, lead)


_ENTRIES = {kind: _entries(kind) for kind in _KINDS}
_DIGITS = tuple(p.search for p in _both(r"\d"))


def _mask(text: str) -> str:
    # Long values keep their last four characters (enough to recognise a card); short ones
    # keep a quarter, so a mask always hides most of the value.
    total = sum(c.isalnum() for c in text)
    keep = 4 if total >= 12 else total // 4
    chars = list(text)
    seen = 0
    for index in range(len(chars) - 1, -1, -1):
        if chars[index].isalnum():
            seen += 1
            if seen > keep:
                chars[index] = "*"
    return "".join(chars)


_FOUND_BY = ("check_text", "check_output", "redact", "find", "_substitute", "checks")


class PIIRedactor(TextGuardrail):
    """Finds e-mails, phone numbers, card numbers (Luhn-checked), SSNs, IPv4s and IBANs.

    Args:
        kinds: which kinds of personal data to look for.
        strategy: "redact" (`[REDACTED:email]`), "mask" (all but the last four characters
            starred), "hash" (`[email:1f2e3d4c5b]`, a stable SHA-256 prefix) or "block".
        stages: where to look: "input", "output" or both, for turns and tools alike. The
            default (None) checks a turn's input and output but only a tool's output, so a
            tool receives the arguments the model gave it (`send_email(to=...)` keeps its
            address) while what the tool returns is redacted before the model sees it.
    """

    def __init__(
        self,
        kinds: Iterable[str] = KINDS,
        *,
        strategy: str = "redact",
        stages: Iterable[str] | None = None,
    ) -> None:
        chosen = strings("kinds", kinds)
        unknown = [k for k in chosen if k not in _KINDS]
        if unknown or not chosen:
            raise ValueError(
                f"kinds must be a non-empty subset of {', '.join(KINDS)}; got {kinds!r}"
            )
        self.kinds = tuple(k for k in KINDS if k in chosen)
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.stages = _check_stages(stages)
        # Each kind in order: its entry for any text, and for ASCII text.
        self._rx = [_ENTRIES[k] for k in self.kinds]
        # The stream fast path of `Guardrails` (see `TextGuardrail.stream_trigger`), unless a
        # subclass changes what is found (then its own trigger, if any, applies).
        cls = type(self)
        if all(getattr(cls, m) is getattr(PIIRedactor, m) for m in _FOUND_BY):
            # One branch per character class (a superset of the kinds' triggers, so still never
            # missing one): `@`, and two digits at most one separator apart.
            either = ["@"] if "email" in self.kinds else []
            if any(k != "email" for k in self.kinds):
                either.append(r"\d[ .\-]?\d")
            self.stream_trigger = "|".join(either)
            self.stream_overlap = 2
            # Each branch ends with "@" or an ASCII digit (`\d` also matches other digits:
            # non-ASCII text is always scanned).
            self.stream_ends = ("@" if "email" in self.kinds else "") + (
                "0123456789" if any(k != "email" for k in self.kinds) else ""
            )
            if self.strategy != "block":
                self._digits = any(k != "email" for k in self.kinds)
                self._emails = "email" in self.kinds
                self.stream_first_change = self._first_change

    def _first_change(self, text: str) -> int | None:
        # Where the first finding can start: every kind but e-mail has two digits at most a
        # separator apart within its first five characters (a phone's "+1 (0"); an e-mail
        # starts inside the run of local-part characters before an "@" (the first "@"'s run is
        # the earliest; it may go on before `text`). `redact` changes nothing before
        # its first finding: each replacement's first changed character is "[" or "*" (a mask
        # keeps leading non-alphanumerics), which no pattern matches, so no later kind's finding
        # starts earlier by running into it.
        first = None
        if self._digits:
            found = _PAIRS[text.isascii()](text)
            if found is not None:
                first = found.start() - 4
        if self._emails:
            start = _email_start(text)
            if start == 0:
                return -sys.maxsize  # the run may begin before `text`
            if start is not None and (first is None or start < first):
                first = start
        return first

    def find(self, text: str) -> list[tuple[str, str]]:
        """Every `(kind, matched text)` in `text`, kind by kind."""
        found = []
        ascii = text.isascii()
        digit = _DIGITS[ascii](text)
        first = digit.start() if digit is not None else -1
        for entries in self._rx:
            kind, rx, valid, trigger, back, lead = entries[ascii]
            if trigger is None:
                pos = _email_start(text)
            else:
                hit = trigger(text, first - back if first > back else 0) if first >= 0 else None
                pos = None if hit is None else max(0, hit.start() - lead)
            if pos is not None:
                found += [
                    (kind, m.group())
                    for m in rx.finditer(text, pos)
                    if valid is None or valid(m.group())
                ]
        return found

    def _substitute(self, kind: str, value: str) -> str:
        if self.strategy == "mask":
            return _mask(value)
        if self.strategy == "hash":
            return f"[{kind}:{hashlib.sha256(value.encode()).hexdigest()[:10]}]"
        return f"[REDACTED:{kind}]"

    def redact(self, text: str) -> str:
        """`text` with every finding replaced according to the strategy (never "block")."""
        first = -2  # the first digit of `text` (-1: none; -2: not looked for yet, from `since`)
        since = 0
        substitute = self._substitute
        ascii = text.isascii()
        for entries in self._rx:
            kind, rx, valid, trigger, back, lead = entries[ascii]
            if trigger is None:
                at = _email_start(text)
            else:
                if first == -2:
                    digit = _DIGITS[ascii](text, since)
                    first = digit.start() if digit is not None else -1
                if first < 0:
                    continue
                hit = trigger(text, first - back if first > back else 0)
                if hit is None:
                    continue
                at = hit.start() - lead
                if at < 0:
                    at = 0
            parts: list[str] = []
            last = changed = 0
            search = rx.search
            # `rx.sub`, match by match; after each, the scan resumes where the next match can
            # start at the earliest (its trigger's), and stops when no trigger is left.
            while at is not None:
                match = search(text, at)
                if match is None:
                    break
                value = match.group()
                end = match.end()
                if valid is None or valid(value):
                    if not parts:
                        changed = match.start()
                    parts += (text[last : match.start()], substitute(kind, value))
                    last = end
                if trigger is None:
                    at = _email_start(text, end)
                else:
                    hit = trigger(text, end - back if end > back else 0)
                    at = None if hit is None else hit.start() - lead
                if at is not None and at < end:
                    at = end
            if parts:
                parts.append(text[last:])
                text = "".join(parts)
                ascii = text.isascii()
                # Text before the first change is unchanged, and so is a first digit there;
                # else the first digit (if any) lies after it.
                if first == -2:
                    since = min(since, changed)
                elif not 0 <= first < changed:
                    first, since = -2, changed
        return text

    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        if self.strategy == "block":
            found = self.find(text)
            if found:
                return Verdict.block("pii: " + ", ".join(sorted({k for k, _ in found})))
            return Verdict.allow()
        new = self.redact(text)
        return Verdict.allow() if new == text else Verdict.replace(new)
