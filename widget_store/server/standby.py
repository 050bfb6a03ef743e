"""A serving process started ahead of need: it has imported everything and waits on a pipe, so
that the supervisor, when the serving process dies, has it start at once instead of starting
a new Python.

Most of a serving process's start is Python importing the store, DBOS, SQLAlchemy and FastAPI
(about 0.6 s of the 0.9 s from a crash to serving again, on the 2-core machine): a standby has
done that before the crash. It reads nothing else and opens nothing until told to start, and
the start carries what changed since it was spawned (the restart count), so it then starts
exactly as a new process would. Closing the pipe instead makes it exit quietly.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

# The largest start message read; a few environment variables.
MAX_MESSAGE_BYTES = 4096


@dataclass
class Standby:
    """The supervisor's side: a waiting process, the read end of its start report pipe, and
    the write end of the pipe it waits on."""

    process: subprocess.Popen[bytes]
    report_fd: int
    start_fd: int

    def start(self, env: dict[str, str]) -> bool:
        """Have it start with these environment variables set; False if it is gone (it then
        still needs `discard`)."""
        if self.process.poll() is not None:
            return False
        try:
            os.write(self.start_fd, json.dumps(env).encode() + b"\n")
        except OSError:
            return False
        os.close(self.start_fd)
        self.start_fd = -1
        return True

    def discard(self) -> None:
        """Let it go: it exits once its pipe closes; one that does not is killed."""
        for fd in (self.start_fd, self.report_fd):
            if fd >= 0:
                os.close(fd)
        self.start_fd = self.report_fd = -1
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for_start(fd: int) -> bool:
    """The standby's side: wait until told to start, then set the environment it was given.
    False when the pipe closed (or Ctrl-C came) first: the process is not needed."""
    try:
        message = b""
        while not message.endswith(b"\n"):
            chunk = os.read(fd, MAX_MESSAGE_BYTES)
            if not chunk:
                return False
            message += chunk
    except KeyboardInterrupt:
        return False
    finally:
        os.close(fd)
    os.environ.update(json.loads(message))
    return True
