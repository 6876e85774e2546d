"""``tutorwire pen-gateway`` and ``python -m pen_gateway``: pair once, then stream the pad's ink
and the microphone into the session, with one status line in the terminal.

Pairing: the tutor's session page shows a short code ("Use my writing pad"); ``--pair CODE``
exchanges it at ``--server`` for a join token, kept next to the spool so that a restart (a
crash, a reboot, a service) carries on without a new code. ``--token`` gives a join token
directly (services, tests)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from wire import Role

from .adapters import PenAdapter
from .audio import AudioSource, list_microphones, open_source
from .errors import DeviceError, GatewayError, PairingError, ServerError
from .gateway import Gateway, Status
from .pages import Calibration
from .settings import GatewaySettings
from .spool import Spool

SESSION_FILE = "session.json"
DESCRIPTION = "Stream a writing pad's ink and the microphone into a tutoring session."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="the session server, e.g. https://tutor.example.org (or ws://host:port)")
    p.add_argument("--pair", metavar="CODE", help="the code the tutor's session page shows")
    p.add_argument("--token", help="a join token for the tutor's seat (instead of --pair)")
    p.add_argument("--session", help="the session id (with --token)")
    p.add_argument("--device", default="auto",
                   help="auto (the first pen tablet), an evdev path or name, synthetic[:HZ[:SECONDS[:SEED]]], "
                   "replay:FILE[,DESC], or none")
    p.add_argument("--audio", default=None,
                   help="the microphone: default device if omitted, a device name, FILE.wav, or none")
    p.add_argument("--list-devices", action="store_true", help="list pen devices and microphones, then exit")
    p.add_argument("--spool", help="spool directory (PEN_GATEWAY_SPOOL_DIR; default ~/.local/state/tutorwire)")
    p.add_argument("--calibrate", metavar="L,T,R,B", help="the part of the pad that maps to the page, as fractions")
    p.add_argument("--speed", type=float, default=1.0, help="replay and WAV speed (replay, synthetic, WAV only)")
    p.add_argument("--loops", type=int, default=1, help="replay the file this many times")
    p.add_argument("--exit-when-done", action="store_true", help="stop once the input ended and all is delivered")
    p.add_argument("--quiet", action="store_true", help="no status line")
    p.add_argument("--verbose", action="store_true", help="log what happens (reconnects, errors, the spool)")


def ws_base(server: str) -> str:
    u = urllib.parse.urlsplit(server if "://" in server else f"http://{server}")
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(u.scheme)
    if scheme is None or not u.netloc:
        raise ServerError(f"--server {server!r} is not an address", "give it as https://host or http://host:port")
    return f"{scheme}://{u.netloc}"


def http_base(server: str) -> str:
    base = ws_base(server)
    return base.replace("wss://", "https://", 1).replace("ws://", "http://", 1)


def pair(server: str, code: str, timeout: float = 10.0) -> dict[str, Any]:
    """Exchange a pairing code for ``{"token", "session", "ws_path"}`` at the server."""
    body = json.dumps({"code": code}).encode()
    req = urllib.request.Request(f"{http_base(server)}/api/pairing/claim", body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            grant: dict[str, Any] = json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise PairingError(f"the code {code!r} is wrong or has expired",
                               "press 'Use my writing pad' on the session page again and type the new code") from None
        if exc.code == 429:
            raise PairingError("too many pairing attempts", "wait a minute, then pair again") from None
        raise PairingError(f"the server refused the pairing (HTTP {exc.code})", "check --server") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServerError(f"the server at {server} is unreachable ({exc})",
                          "check the network and --server (the address of the session page)") from None
    if not isinstance(grant.get("token"), str) or not isinstance(grant.get("session"), str):
        raise PairingError("the server's answer to the pairing has no token", "check --server")
    return grant


def open_adapter(spec: str, speed: float, loops: int) -> PenAdapter | None:
    if spec == "none":
        return None
    if spec == "synthetic" or spec.startswith("synthetic:"):
        from .synthetic import SyntheticAdapter

        parts = spec.split(":")[1:]  # synthetic[:RATE_HZ[:SECONDS[:SEED]]]
        try:
            rate = float(parts[0]) if parts else 240.0
            seconds = float(parts[1]) if len(parts) > 1 else 3600.0
            seed = int(parts[2]) if len(parts) > 2 else 0
        except ValueError:
            raise DeviceError(f"--device {spec!r}", "give synthetic[:RATE_HZ[:SECONDS[:SEED]]]") from None
        return SyntheticAdapter(seconds, rate, seed, speed=speed)
    if spec.startswith("replay:"):
        from .replay import ReplayAdapter

        path, _, desc = spec[len("replay:"):].partition(",")
        return ReplayAdapter(path, desc=desc or None, speed=speed, loops=loops)
    from .evdev_adapter import EvdevAdapter

    return EvdevAdapter(None if spec == "auto" else spec)


def list_devices() -> int:
    try:
        from .evdev_adapter import list_pens

        pens = list_pens()
        for path, name in pens:
            print(f"pen  {path}  {name}")
    except GatewayError as exc:
        print(f"pen  none: {exc}")
    mics = list_microphones()
    for name in mics:
        print(f"mic  {name}")
    if not mics:
        print("mic  none: no microphone (or no sounddevice: pip install 'tutorwire[pen-mic]'); --audio FILE.wav works")
    print("also: --device synthetic, --device replay:FILE.events[,FILE.desc] or replay:FILE.inkml")
    return 0


def _status_printer(quiet: bool) -> Any:
    def show(status: Status) -> None:
        if not quiet:
            sys.stderr.write("\r\x1b[2K" + status.line()[:200])
            sys.stderr.flush()
    return show


def _grant(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The join grant: from --pair (and kept), --token, or the one kept by an earlier pairing."""
    saved = folder / SESSION_FILE
    if args.pair:
        if not args.server:
            raise PairingError("--pair needs --server", "give the address of the session page as --server")
        grant = pair(args.server, args.pair.strip())
        folder.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"server": args.server, **grant}))
    if args.token:
        if not (args.server and args.session):
            raise ServerError("--token needs --server and --session", "give all three, or pair with --pair CODE")
        grant = {"server": args.server, "token": args.token, "session": args.session}
    elif saved.exists():
        grant = json.loads(saved.read_text())
    else:
        raise PairingError("this PC is not paired with a session",
                           "on the tutor's session page press 'Use my writing pad', then run "
                           "tutorwire pen-gateway --server ADDRESS --pair CODE")
    return grant


async def _run(args: argparse.Namespace, settings: GatewaySettings, folder: Path, grant: dict[str, Any]) -> int:
    adapter = open_adapter(args.device, args.speed, args.loops)
    audio: AudioSource | None = open_source(args.audio, speed=args.speed)
    url = f"{ws_base(grant['server'])}/ws/session/{urllib.parse.quote(grant['session'])}"
    spool = Spool(folder / "spool", max_bytes=settings.spool_max_bytes, warn_fraction=settings.spool_warn_fraction,
                  fsync_s=settings.fsync_ms / 1000)
    gw = Gateway(url, grant["token"], adapter=adapter, audio=audio, spool=spool, settings=settings,
                 role=Role.from_label(str(grant.get("role", "tutor"))),  # a class's presenter too
                 calibration=Calibration.parse(args.calibrate) if args.calibrate else None,
                 on_status=_status_printer(args.quiet))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await gw.run(stop, exit_when_done=args.exit_when_done)
    finally:
        spool.close()
        if not args.quiet:
            sys.stderr.write("\n")
    return 0


def _loop_factory() -> Any:
    """uvloop where it is installed (it halves the event loop's cost per pen report), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")
    if args.list_devices:
        return list_devices()
    try:
        settings = GatewaySettings.from_env()
        if args.spool:
            settings = GatewaySettings(**{**{f: getattr(settings, f) for f in settings.__dataclass_fields__},
                                          "spool_dir": args.spool})
        folder = Path(args.spool or settings.spool_path)
        grant = _grant(args, folder)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_run(args, settings, folder, grant))
    except GatewayError as exc:
        print(f"tutorwire pen-gateway: {exc.message}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tutorwire pen-gateway", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
