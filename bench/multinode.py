"""Several nodes on Redis (issue 20): what durability costs, how fast a node's death is survived,
and what the hop between nodes adds.

Three measurements, each printed as it ends, then one JSON object on the last line:

1. **Durable acks** (``durable_ack_cpu_overhead_percent``, ``ack_latency_p99_ms``): the ink load
   of ``bench/ink_relay.py`` (``--sessions`` one-on-one rooms, 120 Hz pens in 16 ms batches, from
   load generator processes on ``--load-cpu``) against one ``tutorwire serve`` on
   ``--server-cpu``, alternately as a cluster node (``TUTORWIRE_NODE_ID``: every event in a Redis
   stream before its Ack goes) and as a plain node (no Redis), ``--repeats`` times each, in the same
   run. The overhead is the server's CPU per delivered batch as a node against plain, medians of
   the windows. Ack latency is from the tutor's write of an op to its Ack read, for every op
   (the server holds acks up to ``ack_delay_ms`` = 40 ms to coalesce them, on both; the durable
   wait comes on top).
2. **Failover** (``failover_s_p50``, ``failover_s_p95``, ``acked_ops_lost``): three nodes, and
   ``--rooms`` one-on-one rooms spread over them, each tutor writing a batch of points every
   ``--pen-ms``. ``--rounds`` times: SIGKILL the node with the most rooms, time until every
   client of it is live again on another node, restart the node. At the end the writing stops
   and every student's pages are compared with its tutor's: an op the tutor was told is
   acknowledged and the student does not have is lost; a point twice is doubled.
3. **Cross-node hop** (``cross_node_hop_p99_ms``): a class homed on one node with viewers on
   it and on the other two; the presenter writes; for each event, the arrival at a viewer on
   another node minus the arrival at a viewer on the home node (one process, one clock).

Run: ``.venv/bin/python -m bench.multinode`` (Redis on 127.0.0.1:6379; keys under a prefix of
the run's own, removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import redis

from sessionserver.client import SessionClient
from wire import Point, Role
from wire import messages as m

from .generator import TUTORWIRE, Go, Phase, Tally, _join
from .ink_relay import Generators
from .nodes import REDIS_URL, Cluster, Node, cluster, start_node
from .profile import Sampler, format_top, top_lines
from .servers import free_port, tutorwire_server
from .wsload import WsClient, connect

SECRET = "multinode-bench-secret-of-32-bytes-or-more"
HOP_ROOM = "class-hop"
_EVENT = int(m.MsgType.EVENT)
_unpack = msgpack.unpackb


@dataclass
class Options:
    sessions: int
    seconds: float
    warmup: float
    repeats: int
    generators: int
    server_cpu: int | None
    load_cpu: int | None
    rooms: int
    rounds: int
    pen_ms: float
    viewers: int
    events: int
    log_dir: Path
    skip: list[str]
    profile: bool = False  # py-spy the durability windows (their figures are then not to be reported)
    journal_ms: float = 0.0  # TUTORWIRE_CLUSTER_JOURNAL_INTERVAL_MS of the durable node (0: its default)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- 1. durable acks ---------------------------------------------------------------------------


@dataclass
class Window:
    durable: bool
    server_cpu_s: float
    deliveries: int
    ack_latencies: list[float]
    errors: int

    @property
    def cpu_per_delivery_us(self) -> float:
        return self.server_cpu_s / max(1, self.deliveries) * 1e6


def _window(opts: Options, gens: Generators, durable: bool, repeat: int, prefix: str) -> Window:
    port = free_port()
    extra = ({"TUTORWIRE_REDIS_URL": REDIS_URL, "TUTORWIRE_REDIS_PREFIX": prefix,
              "TUTORWIRE_NODE_ID": f"bench-{repeat}", "TUTORWIRE_NODE_URL": f"http://127.0.0.1:{port}",
              **({"TUTORWIRE_CLUSTER_JOURNAL_INTERVAL_MS": str(opts.journal_ms)} if opts.journal_ms else {})}
             if durable else {})
    server = tutorwire_server(port, SECRET, opts.log_dir, opts.server_cpu, extra_env=extra)
    try:
        server.wait_ready()
        count = len(gens.conns)
        for g, conn in enumerate(gens.conns):
            conn.send(Phase(TUTORWIRE, port, tuple(range(g, opts.sessions, count)),
                            f"d{int(durable)}r{repeat}", SECRET))
        for conn in gens.conns:
            gens.expect(conn, "connected", 120)
        start = time.monotonic() + 0.05
        t0, t1 = start + opts.warmup, start + opts.warmup + opts.seconds
        for conn in gens.conns:
            conn.send(Go(start, t0, t1))
        time.sleep(max(0.0, t0 - time.monotonic()))  # the window's start: a point in time, not an event
        cpu0 = server.cpu_s()
        sampler = (Sampler(server.pid, opts.seconds, opts.log_dir / f"profile-{int(durable)}-{repeat}.txt")
                   if opts.profile else None)
        time.sleep(max(0.0, t1 - time.monotonic()))
        cpu1 = server.cpu_s()
        if sampler is not None:
            _say(f"profile, durable={durable}:\n{format_top(top_lines(sampler.wait()))}")
        tallies: list[Tally] = [gens.expect(conn, "tally", 60) for conn in gens.conns]
        for conn in gens.conns:
            gens.expect(conn, "closed", 30)
    except RuntimeError:
        _say(f"server log:\n{server.log_tail()}")
        raise
    finally:
        server.stop()
    acks = [x for t in tallies for x in t.ack_latencies]
    return Window(durable, cpu1 - cpu0, sum(t.deliveries for t in tallies), acks,
                  sum(len(t.errors) + len(t.server_closes) for t in tallies))


def durability(opts: Options) -> dict[str, Any]:
    prefix = f"tw-bench-{secrets.token_hex(4)}:"
    gens = Generators(opts.generators, opts.load_cpu)
    windows: list[Window] = []
    try:
        for repeat in range(opts.repeats):
            for durable in (True, False) if repeat % 2 == 0 else (False, True):
                w = _window(opts, gens, durable, repeat, prefix)
                windows.append(w)
                _say(f"durable={durable}: {w.deliveries} deliveries, {w.cpu_per_delivery_us:.1f} us CPU each, "
                     f"ack p99 {_quantile(w.ack_latencies, 0.99) * 1000:.1f} ms, errors {w.errors}")
    finally:
        gens.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
    on = [w for w in windows if w.durable]
    off = [w for w in windows if not w.durable]
    per_on = statistics.median(w.cpu_per_delivery_us for w in on)
    per_off = statistics.median(w.cpu_per_delivery_us for w in off)
    return {
        "durable_ack_cpu_overhead_percent": round((per_on / per_off - 1) * 100, 1),
        "cpu_us_per_delivery_durable": round(per_on, 2),
        "cpu_us_per_delivery_plain": round(per_off, 2),
        "ack_latency_p50_ms": round(_quantile([x for w in on for x in w.ack_latencies], 0.5) * 1000, 2),
        "ack_latency_p99_ms": round(_quantile([x for w in on for x in w.ack_latencies], 0.99) * 1000, 2),
        "ack_latency_p99_ms_plain": round(_quantile([x for w in off for x in w.ack_latencies], 0.99) * 1000, 2),
        "durability_sessions": opts.sessions,
        "durability_errors": sum(w.errors for w in windows),
    }


# --- 2. failover -------------------------------------------------------------------------------


def pen(start: int, n: int) -> list[Point]:
    return [Point(100 + i % 3000, 200 + (i * 7) % 3000, 4 * i, 300 + i % 200) for i in range(start, start + n)]


@dataclass
class Pair:
    session: str
    tutor: SessionClient
    student: SessionClient
    stroke: int = 0
    points: int = 0


async def _grant(c: Cluster, session: str, role: str) -> dict[str, str]:
    async with httpx.AsyncClient() as http:
        for node in c.nodes:
            if not node.alive:
                continue
            reply = await http.get(f"{node.http}/dev/join", params={"session": session, "role": role})
            reply.raise_for_status()
            return dict(reply.json())
    raise RuntimeError("no node is alive")


async def _writer(pair: Pair, stop: asyncio.Event, pen_ms: float) -> None:
    """A tutor writing: strokes of 120 points, 4 points a batch, every ``pen_ms``."""
    tutor = pair.tutor
    while not stop.is_set():
        pair.stroke = await tutor.begin_stroke()
        for batch in range(30):
            await tutor.add_points(pair.stroke, pen(batch * 4, 4))
            pair.points += 4
            await asyncio.sleep(pen_ms / 1000)  # the pen's cadence
        await tutor.end_stroke(pair.stroke)


def _home(c: Cluster, pair: Pair) -> Node | None:
    url = pair.tutor.session.redirect or ""
    for node in c.nodes:
        if f":{node.port}/" in url:
            return node
    return None


async def failover(opts: Options) -> dict[str, Any]:
    with cluster(3) as c:
        pairs: list[Pair] = []
        for i in range(opts.rooms):
            session = f"fo-{i}"
            g_t, g_s = await _grant(c, session, "tutor"), await _grant(c, session, "student")
            urls = c.urls(session)
            tutor = SessionClient(g_t["ws_url"], g_t["token"], Role.TUTOR, auto_reconnect=True, fallback_urls=urls)
            student = SessionClient(g_s["ws_url"], g_s["token"], Role.STUDENT, auto_reconnect=True,
                                    fallback_urls=urls)
            await tutor.connect(timeout=20)
            await student.connect(timeout=20)
            pairs.append(Pair(session, tutor, student))
        stop = asyncio.Event()
        writers = [asyncio.create_task(_writer(p, stop, opts.pen_ms)) for p in pairs]
        times: list[float] = []
        try:
            await asyncio.sleep(1.0)  # the writing under way
            for round_ in range(opts.rounds):
                homes = await _homes(c, pairs)
                victim = max(c.nodes, key=lambda n: sum(1 for h in homes.values() if h == n.node_id))
                affected = [p for p in pairs if homes.get(p.session) == victim.node_id]
                before = {id(p.tutor): (p.tutor.reconnects, p.student.reconnects) for p in affected}
                victim.kill()
                killed = time.monotonic()

                def live_again(affected: list[Pair] = affected,
                               before: dict[int, tuple[int, int]] = before) -> bool:
                    return all(p.tutor.connected and p.student.connected
                               and p.tutor.reconnects > before[id(p.tutor)][0]
                               and p.student.reconnects > before[id(p.tutor)][1] for p in affected)

                await pairs[0].tutor.wait_for(live_again, 30)
                took = time.monotonic() - killed
                times.append(took)
                _say(f"round {round_ + 1}: killed {victim.node_id} ({len(affected)} rooms): "
                     f"every client live again after {took:.2f} s")
                index = c.nodes.index(victim)
                env = c.env | {"TUTORWIRE_RECORDINGS_DIR": tempfile.mkdtemp(prefix="tw-bench-rec-")}
                c.nodes[index] = await asyncio.to_thread(start_node, victim.node_id, env, victim.port)
                await asyncio.sleep(1.0)  # the restarted node announces itself and takes new rooms
        finally:
            stop.set()
            await asyncio.gather(*writers, return_exceptions=True)
        lost = doubled = 0
        for p in pairs:
            await p.tutor.wait_for(_settled(p.tutor), 30)
        for p in pairs:
            want = {(s.pid, s.stroke): s.points for s in p.tutor.replica.strokes()}

            def caught_up(p: Pair = p, want: dict[tuple[int, int], list[Point]] = want) -> bool:
                got = {(s.pid, s.stroke): s.points for s in p.student.replica.strokes()}
                return all(len(got.get(k, [])) >= len(v) for k, v in want.items())

            try:
                await p.student.wait_for(caught_up, 10)
            except TimeoutError:
                pass
            got = {(s.pid, s.stroke): s.points for s in p.student.replica.strokes()}
            for key, points in want.items():
                have = got.get(key, [])
                lost += max(0, len(points) - len(have))
                doubled += max(0, len(have) - len(points))
        for p in pairs:
            await p.tutor.close()
            await p.student.close()
        return {
            "failover_s_p50": round(statistics.median(times), 2),
            "failover_s_p95": round(_quantile(times, 0.95), 2),
            "failover_s_max": round(max(times), 2),
            "failover_rounds": len(times),
            "failover_rooms": opts.rooms,
            "acked_ops_lost": lost,  # points the tutor holds acknowledged that its student never got
            "points_doubled": doubled,
            "points_written": sum(p.points for p in pairs),
        }


def _settled(client: SessionClient) -> Callable[[], bool]:
    return lambda: not client.outbox.in_flight and not client.outbox.waiting


async def _homes(c: Cluster, pairs: list[Pair]) -> dict[str, str]:
    client = redis.asyncio.Redis.from_url(c.redis_url)
    try:
        values = await client.mget([f"{c.prefix}room-node:{p.session}" for p in pairs])
    finally:
        await client.aclose()
    return {p.session: v.decode() for p, v in zip(pairs, values, strict=True) if v is not None}


# --- 3. cross-node hop ------------------------------------------------------------------------


async def _probe(c: Cluster, node: Node, user: str, arrivals: dict[int, float]) -> WsClient:
    """A raw viewer on ``node`` that notes when each event (by seq) arrives."""
    client = await connect("127.0.0.1", node.port, f"/ws/session/{HOP_ROOM}")

    def on_event(payload: bytes, now: float) -> None:
        if len(payload) > 1 and payload[1] == _EVENT:
            arrivals[_unpack(payload)[1]] = now

    await _join(client, c.token(HOP_ROOM, Role.VIEWER, user), Role.VIEWER, on_event)
    return client


def _crowd_main(conn: Any, seats: list[tuple[int, str]]) -> None:
    """A process of raw class viewers that join and read everything, and nothing more."""
    import uvloop

    async def run() -> None:
        clients = []
        for port, token in seats:
            client = await connect("127.0.0.1", port, f"/ws/session/{HOP_ROOM}")
            await _join(client, token, Role.VIEWER, lambda payload, now: None)
            clients.append(client)
        conn.send("joined")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        for client in clients:
            client.close()

    uvloop.run(run())


async def hop(opts: Options) -> dict[str, Any]:
    """The presenter writes on the class's home; probes on the home and on each other node
    see the same events: the difference of arrival times is what the hop between nodes adds."""
    with cluster(3) as c:
        home = c.nodes[0]
        presenter = SessionClient(home.ws(HOP_ROOM), c.token(HOP_ROOM, Role.PRESENTER, "teacher"), Role.PRESENTER)
        await presenter.connect(timeout=20)
        # the class's other viewers, in a process of their own so that their reading does not
        # delay the probes' (the load generator must not be what is measured)
        seats = [(node.port, c.token(HOP_ROOM, Role.VIEWER, f"v{n}-{v}")) for n, node in enumerate(c.nodes)
                 for v in range(opts.viewers)]
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        crowd = ctx.Process(target=_crowd_main, args=(child, seats), daemon=True)
        crowd.start()
        if not parent.poll(60) or parent.recv() != "joined":
            raise RuntimeError("the class's viewers did not join")
        seen: list[dict[int, float]] = [{} for _ in c.nodes]
        probes = [await _probe(c, node, f"probe-{n}", seen[n]) for n, node in enumerate(c.nodes)]
        await asyncio.sleep(1.5)  # the joins' Roster events are out: only ink from here
        first = max(max(s, default=0) for s in seen)
        sent = 0
        while sent < opts.events:
            stroke = await presenter.begin_stroke()
            for i in range(0, 120, 2):
                await presenter.add_points(stroke, pen(i, 2))
                sent += 1
                await asyncio.sleep(0.016)  # a 60 Hz pen
                if sent >= opts.events:
                    break
            await presenter.end_stroke(stroke)
        await asyncio.sleep(1.0)  # the last events across
        hops = [far[seq] - seen[0][seq] for far in seen[1:] for seq in far if seq > first and seq in seen[0]]
        missing = sum(1 for far in seen[1:] for seq in seen[0] if seq > first and seq not in far)
        for probe in probes:
            probe.close()
        await presenter.close()
        parent.send("stop")
        crowd.join(10)
    return {
        "cross_node_hop_p50_ms": round(_quantile(hops, 0.5) * 1000, 2),
        "cross_node_hop_p99_ms": round(_quantile(hops, 0.99) * 1000, 2),
        "cross_node_hop_events": len(hops),
        "cross_node_missing": missing,
        "class_viewers": len(seats) + len(probes),
    }


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=100, help="rooms of the durable-ack load")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=2, help="windows of each kind (durable, plain)")
    p.add_argument("--generators", type=int, default=1)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--rooms", type=int, default=24, help="rooms of the failover run")
    p.add_argument("--rounds", type=int, default=5, help="node deaths in the failover run")
    p.add_argument("--pen-ms", type=float, default=33.0)
    p.add_argument("--viewers", type=int, default=30, help="class viewers of the hop run, per node")
    p.add_argument("--events", type=int, default=300)
    p.add_argument("--skip", action="append", default=[], choices=["durability", "failover", "hop"])
    p.add_argument("--profile", action="store_true", help="py-spy the durability windows (figures not reported)")
    p.add_argument("--journal-ms", type=float, default=0.0, help="the durable node's journal interval (0: default)")
    a = p.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="tw-multinode-"))
    pinned = (os.cpu_count() or 1) > 1
    return Options(a.sessions, a.seconds, a.warmup, a.repeats, a.generators, a.server_cpu if pinned else None,
                   a.load_cpu if pinned else None, a.rooms, a.rounds, a.pen_ms, a.viewers, a.events, log_dir,
                   a.skip, a.profile, a.journal_ms)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    skip = set(opts.skip)
    out: dict[str, Any] = {"bench": "multinode"}
    if "durability" not in skip:
        out |= durability(opts)
    if "failover" not in skip:
        out |= asyncio.run(failover(opts))
    if "hop" not in skip:
        out |= asyncio.run(hop(opts))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
