"""The pipe on which a serving process tells the supervisor whether it started
(server/start_report.py): each thing it can say, and saying nothing."""

from __future__ import annotations

import os

from widget_store.server.start_report import MAX_LINE_BYTES, Report, StartReporter, read_report


def said(*lines: str) -> Report:
    read, write = os.pipe()
    reporter = StartReporter(write)
    for line in lines:
        if line == "serving":
            reporter.serving()
        else:
            reporter.failed(line)
    if not lines:
        os.close(write)  # the child died before saying anything
    return read_report(read)


def test_serving() -> None:
    assert said("serving") == Report(serving=True)


def test_a_failure_and_its_reason_on_one_line() -> None:
    assert said("cannot connect\nto the database") == Report(
        serving=False, reason="cannot connect to the database"
    )


def test_nothing_said_is_a_start_that_did_not_serve() -> None:
    assert said() == Report(serving=False)


def test_only_the_first_word_counts_and_a_long_reason_is_cut() -> None:
    report = said("x" * 10 * MAX_LINE_BYTES, "serving")
    assert not report.serving
    assert report.reason is not None and len(report.reason) < MAX_LINE_BYTES


def test_without_a_pipe_nothing_is_said() -> None:
    assert StartReporter(None).failed("anything") is False
