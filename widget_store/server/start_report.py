"""How a serving process tells its supervisor that it serves, or why it could not start: one line
on a pipe whose write end the supervisor passes on the worker's command line.

A pipe, not a file or a setting: the supervisor reads it while the child lives, and it ends by
itself (end of file) when the child dies, whatever the death. The line is `serving`, or
`failed <reason>`; a child that dies before writing either never served.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SERVING = "serving"
FAILED = "failed "
# Longer lines are cut: a reason is one sentence, and the reader must not grow without bound.
MAX_LINE_BYTES = 4096


@dataclass(frozen=True)
class Report:
    """What the child said: that it serves, or why it could not start (None: it said nothing)."""

    serving: bool
    reason: str | None = None


class StartReporter:
    """The child's end: says once that it serves, or why it failed. Without a pipe (the worker
    run by hand) it says nothing."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def serving(self) -> None:
        self._say(SERVING)

    def failed(self, reason: str) -> bool:
        """Whether the supervisor will hear it (else the caller logs the reason itself)."""
        return self._say(FAILED + " ".join(reason.split()))

    def _say(self, line: str) -> bool:
        if self.fd is None:
            return False
        fd, self.fd = self.fd, None
        data = line.encode("utf-8", "replace")[: MAX_LINE_BYTES - 1] + b"\n"
        try:
            os.write(fd, data)  # under PIPE_BUF: one write, never split
            return True
        except OSError:  # the supervisor is gone: nobody to tell
            return False
        finally:
            os.close(fd)


def read_report(fd: int) -> Report:
    """The supervisor's end: blocks until the child says something or dies, then closes `fd`."""
    data = b""
    try:
        while b"\n" not in data and len(data) < MAX_LINE_BYTES:
            chunk = os.read(fd, MAX_LINE_BYTES)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    line = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    if line == SERVING:
        return Report(serving=True)
    if line.startswith(FAILED):
        return Report(serving=False, reason=line[len(FAILED) :] or None)
    return Report(serving=False)
