"""The servers under test as child processes, pinned to a core, and the CPU figures read from /proc."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
_REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
    return (int(fields[11]) + int(fields[12])) * _TICK_S


@dataclass(frozen=True, slots=True)
class CoreTimes:
    busy_s: float  # anything but idle and iowait
    softirq_s: float  # part of busy: mostly the loopback TCP work of whoever sends on this core


def core_times(cpu: int) -> CoreTimes:
    """How long core ``cpu`` has been busy so far, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
            busy = user + nice + system + irq + softirq + steal
            return CoreTimes(busy * _TICK_S, softirq * _TICK_S)
    raise ValueError(f"no cpu{cpu} in /proc/stat")


def pin_command(argv: list[str], cpu: int | None) -> list[str]:
    """``argv`` run with ``taskset -c cpu`` (which execs it, so the pid is the server's own)."""
    if cpu is None:
        return argv
    if shutil.which("taskset") is None:
        raise RuntimeError("taskset is needed to pin the server (apt-get install util-linux)")
    return ["taskset", "-c", str(cpu), *argv]


class ServerProcess:
    """A server started on ``port`` and stopped with SIGINT; its output goes to ``log_path``."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path,
                 env: Mapping[str, str] | None = None, cpu: int | None = None) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(pin_command(argv, cpu), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(env) if env is not None else None, cwd=_REPO)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on port {self.port} within {timeout_s:g} s")

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid)

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def tutorwire_server(port: int, secret: str, log_dir: Path, cpu: int | None, record: bool = False,
                     extra_env: Mapping[str, str] | None = None) -> ServerProcess:
    """The session server as deployed (``tutorwire serve``), with default settings but the log
    level, the matcher worker off, and recording off unless ``record`` (the relay alone is
    measured; ``bench/archive.py`` measures what recording adds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env.update(TUTORWIRE_SECRET=secret, TUTORWIRE_LOG_LEVEL="warning", TUTORWIRE_MATCHER_WORKER="false",
               TUTORWIRE_RECORD="true" if record else "false", TUTORWIRE_RECORDINGS_DIR=str(log_dir / "recordings"),
               # a capacity bench drives the server to a full core: shedding would refuse its joins
               TUTORWIRE_OVERLOAD_CPU="0", TUTORWIRE_OVERLOAD_LAG_MS="0")
    env.update(extra_env or {})
    argv = [str(Path(sys.executable).with_name("tutorwire")), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess("tutorwire", argv, port, log_dir / f"tutorwire-{port}.log", env, cpu)


def baseline_server(port: int, log_dir: Path, cpu: int | None) -> ServerProcess:
    argv = [sys.executable, "-m", "bench.baseline_relay", "--port", str(port)]
    return ServerProcess("baseline relay", argv, port, log_dir / f"baseline-{port}.log", None, cpu)


NODE_RELAY_DIR = _REPO / "bench" / "node_relay"


def ensure_node_relay() -> str | None:
    """The ``node`` to run the Node.js ``ws`` relay with, after ``npm install`` of its package
    (``bench/node_relay/package.json``) if it is not installed yet; ``None`` (with the reason on
    stderr) when Node.js or npm is missing or the install fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        print("warning: node and npm are needed for the Node.js ws relay peer (apt-get install nodejs npm)",
              file=sys.stderr)
        return None
    if not (NODE_RELAY_DIR / "node_modules" / "ws").is_dir():
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-package-lock"], cwd=NODE_RELAY_DIR,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            print(f"warning: npm install of the Node.js relay failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
    return node


def node_server(port: int, log_dir: Path, cpu: int | None, node: str) -> ServerProcess:
    argv = [node, str(NODE_RELAY_DIR / "relay.js"), str(port)]
    return ServerProcess("node ws relay", argv, port, log_dir / f"node-{port}.log", None, cpu)


def picows_server(port: int, log_dir: Path, cpu: int | None) -> ServerProcess:
    argv = [sys.executable, "-m", "bench.picows_relay", "--port", str(port)]
    return ServerProcess("picows relay", argv, port, log_dir / f"picows-{port}.log", None, cpu)
