"""The ``tutorwire`` command: ``serve`` runs the session server (``--node-id``: one node of
several), ``matcher-worker`` a matcher worker alone, ``token`` mints a join token,
``tutors import``/``tutors export`` load and dump the tutor roster (``cli_tutors``)."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from typing import Any

from wire import ONE_ON_ONE_RIGHTS, Role

from . import cli_recordings, cli_tutors
from .settings import Settings, SettingsError

log = logging.getLogger("tutorwire")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from . import logs
    from .app import server_config

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.dev:
        overrides["dev_mode"] = True
    if args.node_id:
        overrides["node_id"] = args.node_id
    settings = Settings.from_env(**overrides)
    config = server_config(settings)  # uvicorn sets up its loggers here; ours come after
    try:
        logs.configure(settings.log_level, settings.log_format)
    except ValueError as exc:
        print(f"tutorwire serve: TUTORWIRE_LOG_FORMAT: {exc}", file=sys.stderr)
        return 2
    if not settings.secret:
        log.warning("TUTORWIRE_SECRET is not set: tokens are signed with a random per-process secret")
    if settings.dev_mode:
        log.warning("dev mode is ON: anyone can get a join token at /dev/join; never use it in production")
    server = uvicorn.Server(config)
    # Everything built so far lives as long as the process: keep the cyclic GC from rescanning
    # it, and let young garbage pile up longer between collections (ink is mostly bytes).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    server.run()
    return 0


def _matcher_worker(args: argparse.Namespace) -> int:
    """A matcher worker and nothing else, on the deployment's Redis: for operators who run the
    workers apart from the session servers (those then set TUTORWIRE_MATCHER_WORKER=0). Workers
    on any number of processes claim work atomically in Redis; Ctrl-C or SIGTERM stops it."""
    import asyncio
    import signal

    from . import logs
    from .matching import Matching

    settings = Settings.from_env(matcher_worker=True)
    if not settings.redis_url:
        print("tutorwire matcher-worker: set TUTORWIRE_REDIS_URL (a worker alone has nobody to match "
              "without the servers' shared Redis)", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)

    async def run() -> None:
        matching = Matching(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await matching.start()
        log.info("matcher worker running on %s (prefix %s)", settings.redis_url, settings.redis_prefix)
        try:
            await stop.wait()
        finally:
            await matching.stop()

    asyncio.run(run())
    return 0


def _token(args: argparse.Namespace) -> int:
    from .auth import TokenSigner

    settings = Settings.from_env()
    if not settings.secret:
        print("tutorwire token: set TUTORWIRE_SECRET to the server's secret", file=sys.stderr)
        return 2
    role = Role.from_label(args.role)
    print(TokenSigner(settings.secret).mint(args.session, args.user, role, int(time.time()) + args.ttl))
    return 0


def _add_pen_gateway(sub: Any) -> None:
    """``tutorwire pen-gateway``: the pen gateway's own command (``pen_gateway.cli``), imported
    only when it runs (the server does not depend on it)."""
    import importlib

    pen = sub.add_parser("pen-gateway", help="stream a writing pad and the microphone into a session")
    try:
        importlib.import_module("pen_gateway.cli").add_arguments(pen)
    except ImportError:
        pass  # installed without the pen gateway: the command says so when run
    pen.set_defaults(func=lambda args: importlib.import_module("pen_gateway.cli").run(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tutorwire", description="Live tutoring sessions.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the session server")
    serve.add_argument("--host", help="address to bind (TUTORWIRE_HOST)")
    serve.add_argument("--port", type=int, help="port to bind (TUTORWIRE_PORT)")
    serve.add_argument("--dev", action="store_true", help="dev mode: demo tokens at /dev/join")
    serve.add_argument("--node-id", help="one node of several on Redis (TUTORWIRE_NODE_ID; docs/cluster.md)")
    serve.set_defaults(func=_serve)
    worker = sub.add_parser("matcher-worker", help="run a matcher worker alone, on TUTORWIRE_REDIS_URL")
    worker.set_defaults(func=_matcher_worker)
    token = sub.add_parser("token", help="mint a join token with TUTORWIRE_SECRET")
    token.add_argument("--session", required=True)
    token.add_argument("--user", required=True)
    token.add_argument("--role", required=True, choices=[r.label for r in ONE_ON_ONE_RIGHTS])
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(func=_token)
    cli_tutors.add_parser(sub)
    cli_recordings.add_parser(sub)
    _add_pen_gateway(sub)
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except SettingsError as exc:
        print(f"tutorwire: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
