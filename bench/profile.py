"""Sampling profiles of a server under load, with py-spy (``pip install py-spy``).

``Sampler(pid, seconds, out)`` records a process for a window (``py-spy record --format raw``,
collapsed stacks) on the load core; ``top_lines(path)`` reads the stacks back and gives the
functions with the most samples, by self time (the leaf frame) and by total time (anywhere on
the stack), so that a benchmark can print where the server spends its CPU. Profiles are for
finding costs: a window that is profiled is not one whose figures are reported.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


class Sampler:
    """py-spy recording process ``pid`` for ``seconds`` into ``out`` (raw collapsed stacks)."""

    def __init__(self, pid: int, seconds: float, out: Path, rate: int = 250, native: bool = False) -> None:
        local = Path(sys.executable).with_name("py-spy")
        exe = str(local) if local.exists() else shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("profiling needs py-spy: pip install py-spy")
        self.out = out
        argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                "--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking"]
        if native:
            argv.append("--native")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait(self, timeout_s: float = 60.0) -> Path:
        _, err = self.proc.communicate(timeout=timeout_s)
        if not self.out.exists():
            self.out.write_text("")
            print(f"warning: py-spy recorded nothing: {err.strip()[-500:]}", file=sys.stderr)
        return self.out


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file})"


def top_lines(path: Path, count: int = 15) -> dict[str, list[tuple[str, float]]]:
    """The ``count`` heaviest functions by self and by total share of samples (percent)."""
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        weight = int(n)
        frames = [_name(f) for f in stack.split(";")]
        if frames and frames[0].startswith("process "):
            frames = frames[1:]  # py-spy's first frame names the process
        if not frames:
            continue
        samples += weight
        self_time[frames[-1]] += weight
        for name in set(frames):
            total_time[name] += weight
    if not samples:
        return {"self": [], "total": []}
    return {
        "self": [(k, round(100 * v / samples, 1)) for k, v in self_time.most_common(count)],
        "total": [(k, round(100 * v / samples, 1)) for k, v in total_time.most_common(count)],
    }


def format_top(top: dict[str, list[tuple[str, float]]]) -> str:
    lines = ["self %   function"]
    lines += [f"{pct:6.1f}   {name}" for name, pct in top["self"]]
    lines.append("total %  function")
    lines += [f"{pct:6.1f}   {name}" for name, pct in top["total"]]
    return "\n".join(lines)
