"""``GET /metrics`` on a live server: every metric the issue names, fed by real sessions, and the
access rule (loopback or the bearer token); ``deploy/grafana/tutorwire.json`` names only metrics
the server exposes."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer, StartServer
from wire import ErrorCode, Point

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "tutorwire.json"
METRIC = re.compile(r"\btutorwire_[a-z_]+\b")


async def scrape(server: RunningServer, **headers: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of ``/metrics``: by sample name, by labels."""
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        answer = await http.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        out.setdefault(family.name + ("_total" if family.type == "counter" else ""), {})  # even with no samples yet
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def one(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


async def test_a_session_moves_the_counters_and_the_gauges_read_the_rooms(start_server: StartServer) -> None:
    server = await start_server()
    before = await scrape(server)
    tutor, student = await server.pair("metrics-1")
    points = [Point(100 + i, 200 + i, i * 4, 500) for i in range(8)]
    stroke = await tutor.begin_stroke()
    await tutor.add_points(stroke, points[:4])
    await tutor.add_points(stroke, points[4:])
    await tutor.end_stroke(stroke)
    await student.wait_for(lambda: any(len(s.points) == len(points) for s in student.replica.strokes()))
    await tutor.send_audio(1, b"\xfcmetrics")  # one 20 ms Opus packet (TOC config 31, code 0)
    await asyncio.wait_for(student.audio.get(), 5)
    await tutor.undo(999)  # no such stroke: Error 1008 for the tutor alone
    await tutor.wait_for(lambda: any(e.code == ErrorCode.UNKNOWN_STROKE for e in tutor.errors))
    after = await scrape(server)

    def moved(name: str, **labels: str) -> float:
        return one(after, name, **labels) - (one(before, name, **labels) if tuple(sorted(labels.items()))
                                             in before.get(name, {}) else 0.0)

    assert moved("tutorwire_ink_batches_in_total") == 2 and moved("tutorwire_ink_points_in_total") == 8
    assert moved("tutorwire_ink_batches_out_total") == 2 and moved("tutorwire_ink_points_out_total") == 8  # 1 receiver
    assert moved("tutorwire_audio_packets_forwarded_total") == 1
    assert moved("tutorwire_errors_total", code=str(int(ErrorCode.UNKNOWN_STROKE))) == 1
    assert one(after, "tutorwire_rooms", kind="one_on_one") == one(before, "tutorwire_rooms", kind="one_on_one") + 1
    assert one(after, "tutorwire_participants", role="tutor") >= 1
    assert one(after, "tutorwire_participants", role="student") >= 1
    assert one(after, "tutorwire_connections") >= 2
    assert one(after, "tutorwire_recordings_open") >= 1
    await tutor.close()
    await student.close()


def dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v.get("query", "") for v in dashboard["templating"]["list"]]
    return {name for expr in exprs for name in METRIC.findall(expr)}


async def test_every_metric_the_dashboard_names_is_on_a_live_servers_metrics(start_server: StartServer) -> None:
    server = await start_server()
    exposed = set(await scrape(server))
    named = dashboard_metrics()
    assert len(named) > 20
    assert sorted(named - exposed) == []
    # and every family the server exposes has a panel (its name, or its histogram's series)
    families = {re.sub(r"_(bucket|sum|count|created)$", "", n) for n in exposed if n.startswith("tutorwire_")}
    shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in named}
    assert sorted(families - shown) == []


async def test_the_issues_list_of_metrics_is_exposed(start_server: StartServer) -> None:
    server = await start_server()
    exposed = set(await scrape(server))
    wanted = [
        "tutorwire_rooms", "tutorwire_participants", "tutorwire_ink_batches_in_total", "tutorwire_ink_points_in_total",
        "tutorwire_ink_batches_out_total", "tutorwire_ink_points_out_total", "tutorwire_audio_packets_forwarded_total",
        "tutorwire_audio_packets_dropped_total", "tutorwire_send_queue_frames", "tutorwire_slow_consumer_closes_total",
        "tutorwire_errors_total", "tutorwire_matcher_queue_length", "tutorwire_matcher_time_to_match_seconds_count",
        "tutorwire_matcher_offers_total", "tutorwire_recording_bytes_total", "tutorwire_recording_flush_seconds_count",
        "tutorwire_event_loop_lag_seconds",
    ]
    assert [w for w in wanted if w not in exposed] == []


async def test_metrics_are_closed_to_other_networks_and_open_with_the_token(start_server: StartServer) -> None:
    server = await start_server(metrics_networks="10.0.0.0/8", metrics_token="scrape-secret-0123456789")
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        refused = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        right = await http.get("/metrics", headers={"Authorization": "Bearer scrape-secret-0123456789"})
    assert refused.status_code == 403 and "TUTORWIRE_METRICS_TOKEN" in refused.json()["error"]
    assert wrong.status_code == 401 and wrong.json() == {"error": "wrong metrics token"}
    assert right.status_code == 200 and "tutorwire_rooms" in right.text


async def test_no_token_and_no_network_closes_metrics_to_everyone(start_server: StartServer) -> None:
    server = await start_server(metrics_networks="")
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        assert (await http.get("/metrics")).status_code == 403
        assert (await http.get("/metrics", headers={"Authorization": "Bearer x"})).status_code == 401
