"""`JsonlEventSink`: session events appended to a file, one JSON object per line.

Each batch is written with one `write` and flushed to the operating system, so a process crash
(even SIGKILL) loses only the batch still in memory. With `fsync=True` each batch is also
`os.fsync`ed, which survives a power loss at the price of one disk sync per batch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from agentmw._validate import check_bool, check_path
from agentmw.events import Event
from agentmw.stores._batch import check_batching
from agentmw.stores._sink import BatchedSink
from agentmw.stores._sink_codec import dump_json, event_from_mapping, event_record

log = logging.getLogger("agentmw.sinks")


class _JsonlBackend:
    def __init__(self, path: str, fsync: bool) -> None:
        self._path = path
        self._fsync = fsync
        self._file: IO[str] | None = None

    def _open(self) -> IO[str]:
        f = open(self._path, "a+", encoding="utf-8", newline="\n")  # noqa: SIM115 (kept open)
        # A crash may have left a torn last line; start on a fresh line so ours stay readable.
        size = f.seek(0, os.SEEK_END)
        if size:
            with open(self._path, "rb") as check:
                check.seek(size - 1)
                if check.read(1) != b"\n":
                    f.write("\n")
        return f

    def write(self, items: Sequence[Event]) -> None:
        if self._file is None:
            self._file = self._open()
        self._file.write("".join(dump_json(event_record(e)) + "\n" for e in items))
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class JsonlEventSink(BatchedSink[Event]):
    """Appends each event as one JSON line (`Event.as_dict()`, `at` in UTC ISO 8601).

    Args:
        path: the file (created with its directory when missing; always appended to).
        fsync: also `os.fsync` after each batch (see the module doc).
        batch_size: most events per write.
        flush_interval: seconds an event may wait before its batch is written.
        max_queue: bound of the in-memory queue.
        put_timeout: seconds `emit` may block on a full queue before dropping the event.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
        put_timeout: float = 0.05,
    ) -> None:
        self.path = check_path("path", path)
        check_bool("fsync", fsync)
        check_batching(batch_size, flush_interval, max_queue, put_timeout)  # before any file
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(
            _JsonlBackend(self.path, fsync),
            name="jsonl-events",
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            put_timeout=put_timeout,
        )

    def emit(self, event: Event) -> None:
        """Queue `event` for writing (never raises on a full queue; see `dropped`)."""
        self._put(event)

    def replay(self, session_id: str | None = None) -> list[Event]:
        """The events in the file, in order; a torn or unreadable line is skipped and logged."""
        self.flush()
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return []
        events: list[Event] = []
        skipped = 0
        for line in lines:
            if not line:
                continue
            try:
                event = event_from_mapping(json.loads(line))
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if session_id is None or event.session_id == session_id:
                events.append(event)
        if skipped:
            log.warning("%s: skipped %d unreadable line(s)", self.path, skipped)
        return events
