"""Long CLI work shows its progress on a terminal and says nothing in a pipe: ``tutorwire
recordings corpus`` over a folder of real recordings, once with standard error on a
pseudo-terminal, once on a pipe; standard output (the CSV) is the same either way."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from recordings.recording import RecordingFiles
from wire import Role, encode
from wire import messages as m

TUTORWIRE = os.path.join(os.path.dirname(sys.executable), "tutorwire")


def make_recordings(root: Path, count: int) -> None:
    for i in range(count):
        files = RecordingFiles.create(root, f"progress-{i}", 1, 1_800_000_000.0 + i)
        bodies: list[tuple[int, int, m.EventBody]] = [(0, 1, m.Presence("wang", True, Role.TUTOR)),
                                                       (10, 2, m.Presence("li", True, Role.STUDENT)),
                                                       (20, 1, m.StrokeBegin(1, 1, 0, m.Tool.PEN, 0xFF, 20, 0, 5))]
        for seq, (ms, pid, body) in enumerate(bodies, 1):
            event = m.Event(seq, ms, pid, getattr(body, "cseq", 0), body)
            files.event(event, encode(event))
        files.finish("test")


def corpus(root: Path, *, terminal: bool) -> tuple[str, str]:
    args = [TUTORWIRE, "recordings", "--dir", str(root), "corpus"]
    if not terminal:
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout, done.stderr
    controller, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=follower, timeout=60, check=True)
        seen = b""
        # the follower side is still open, so what the command wrote waits in the terminal
        while select.select([controller], [], [], 0.5)[0]:
            seen += os.read(controller, 65536)
        return proc.stdout.decode(), seen.decode(errors="replace")
    finally:
        os.close(controller)
        os.close(follower)


@pytest.mark.timeout(120)
def test_the_corpus_shows_a_bar_on_a_terminal_and_nothing_in_a_pipe(tmp_path: Path) -> None:
    make_recordings(tmp_path, 3)
    piped_out, piped_err = corpus(tmp_path, terminal=False)
    assert piped_err == ""
    assert len(piped_out.strip().splitlines()) == 4  # the header and a row per recording
    tty_out, tty_err = corpus(tmp_path, terminal=True)
    assert tty_out == piped_out
    assert "recordings" in tty_err and "3/3" in tty_err, tty_err
