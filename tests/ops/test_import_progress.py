"""Item 7 of issue 23 for the roster: ``tutorwire tutors import`` against the real Redis (a prefix of
its own, removed afterwards) shows a bar on a terminal and nothing in a pipe; its result line on
standard output is the same either way."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from matcher.roster import demo_roster, roster_text
from tests.matcher.test_cli_tutors import BASE_ENV, TUTORWIRE, redis_env

__all__ = ["redis_env"]


def run(args: list[str], env: dict[str, str], *, terminal: bool) -> tuple[str, str]:
    """(standard output, standard error) of ``args``, standard error on a pseudo-terminal or a pipe."""
    if not terminal:
        done = subprocess.run(args, env=BASE_ENV | env, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout, done.stderr
    controller, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    try:
        proc = subprocess.run(args, env=BASE_ENV | env, stdout=subprocess.PIPE, stderr=follower, timeout=60,
                              check=True)
        seen = b""
        while select.select([controller], [], [], 0.5)[0]:  # the follower is open: what was written waits
            seen += os.read(controller, 65536)
        return proc.stdout.decode(), seen.decode(errors="replace")
    finally:
        os.close(controller)
        os.close(follower)


@pytest.mark.timeout(120)
def test_tutors_import_shows_a_bar_on_a_terminal_and_nothing_in_a_pipe(redis_env: dict[str, str],
                                                                         tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_text(demo_roster(), "csv"))
    args = [TUTORWIRE, "tutors", "import", str(roster)]
    piped_out, piped_err = run(args, redis_env, terminal=False)
    assert piped_err == "" and "imported 8 tutors" in piped_out
    tty_out, tty_err = run(args, redis_env, terminal=True)
    assert tty_out == piped_out
    assert "tutors" in tty_err and "8/8" in tty_err, tty_err


@pytest.mark.timeout(120)
def test_tutors_export_shows_a_bar_on_a_terminal_and_only_the_roster_on_standard_output(
        redis_env: dict[str, str], tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_text(demo_roster(), "csv"))
    run([TUTORWIRE, "tutors", "import", str(roster)], redis_env, terminal=False)
    args = [TUTORWIRE, "tutors", "export", "--format", "json"]
    piped_out, piped_err = run(args, redis_env, terminal=False)
    assert piped_err == "" and piped_out.count('"tutor_id"') == 8
    tty_out, tty_err = run(args, redis_env, terminal=True)
    assert tty_out == piped_out  # the bar never reaches the exported roster
    assert "8/8" in tty_err, tty_err
