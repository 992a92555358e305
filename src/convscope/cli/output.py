"""Standard output whose reader may leave: `convscope train … | head -3` must still write its run.

Python ignores SIGPIPE, so a write to a pipe nobody reads raises BrokenPipeError; raised inside training,
that error used to end the command and lose the run. While a command runs, `sys.stdout` is a
`ReaderMayLeave`: the first write that finds the pipe closed sends the rest of the output to the null
device, and the command goes on to its end; the CLI then says so on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class ReaderMayLeave:
    """A text stream over `stream` that swallows output once its reader has closed the pipe."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.reader_left = False
        self.told = False  # the command itself has said on stderr what happened

    def write(self, text: str) -> int:
        if not self.reader_left:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.reader_left:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._silence()

    def isatty(self) -> bool:
        return not self.reader_left and self.stream.isatty()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, errors ...: the real stream's
        return getattr(self.stream, name)

    def _silence(self) -> None:
        self.reader_left = True
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream: nothing below to redirect
            return
        # What the stream still buffers, and whatever the interpreter flushes at exit, goes nowhere quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


@contextmanager
def guarded_stdout() -> Iterator[ReaderMayLeave]:
    """`sys.stdout` as a `ReaderMayLeave` for the length of the block, flushed before it is given back."""
    original = sys.stdout
    guard = ReaderMayLeave(original)
    sys.stdout = guard
    try:
        yield guard
    finally:
        guard.flush()
        sys.stdout = original


def reader_left() -> ReaderMayLeave | None:
    """The running command's stdout guard when its reader has gone away, else None."""
    guard = sys.stdout
    return guard if isinstance(guard, ReaderMayLeave) and guard.reader_left else None
