"""A class spanning three real nodes (docs/cluster.md, "Classes across nodes"): the presenter on
the class's home, viewers on every node. Viewers on the other nodes are served there (no
redirect), through the home's one publication of each event: every viewer receives every
stroke, in order; an edge viewer's raised hand reaches the presenter (an op applied by the
home and acknowledged back across the nodes); a late viewer on an edge gets the whole page."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bench.nodes import Cluster, cluster
from sessionserver.client import SessionClient
from wire import ErrorCode, Point, Role
from wire import messages as m

pytestmark = pytest.mark.timeout(120)
ROOM = "class-span"


def pen(stroke: int, n: int = 24) -> list[Point]:
    return [Point(50 * stroke + i, 7 * i, 4 * i, 300 + i) for i in range(n)]


def board(client: SessionClient) -> list[tuple[int, list[Point], bool]]:
    return [(s.stroke, list(s.points), s.ended) for s in client.replica.strokes()]


def has_strokes(client: SessionClient, n: int) -> Callable[[], bool]:
    return lambda: sum(1 for s in client.replica.strokes() if s.ended) >= n


def hand_up(client: SessionClient, pid: int) -> bool:
    seen = client.replica.participants.get(pid)  # known from the next Roster (coalesced)
    return seen is not None and seen.hand_ms > 0


@pytest.fixture
def three() -> Iterator[Cluster]:
    with cluster(3) as c:
        yield c


async def test_a_class_spans_three_nodes_and_every_viewer_gets_every_stroke_in_order(three: Cluster) -> None:
    home = three.nodes[0]
    presenter = SessionClient(home.ws(ROOM), three.token(ROOM, Role.PRESENTER, "teacher"), Role.PRESENTER)
    viewers: list[SessionClient] = []
    try:
        await presenter.connect(timeout=10)  # the first join claims the class for this node
        for n, node in enumerate(three.nodes):
            for v in range(4):
                viewer = SessionClient(node.ws(ROOM), three.token(ROOM, Role.VIEWER, f"s{n}-{v}"), Role.VIEWER)
                await viewer.connect(timeout=10)
                viewers.append(viewer)
        assert not any(e.code == ErrorCode.MOVED for v in viewers for e in v.errors)  # served where they are
        assert len({v.pid for v in viewers} | {presenter.pid}) == 13  # the home gave every pid
        strokes = []
        for k in range(5):
            stroke = await presenter.begin_stroke()
            for i in range(0, 24, 4):
                await presenter.add_points(stroke, pen(k)[i:i + 4])
            await presenter.end_stroke(stroke)
            strokes.append(stroke)
        for viewer in viewers:
            await viewer.wait_for(has_strokes(viewer, 5), 10)
        expected = [(s, pen(k), True) for k, s in enumerate(strokes)]
        for viewer in viewers:
            assert board(viewer) == expected  # every stroke, every point, in order
        # an edge viewer raises a hand: applied by the home, seen by the presenter, acked back
        edge_viewer = viewers[-1]
        await edge_viewer.send_op(lambda c: m.Hand(c, True))
        await presenter.wait_for(lambda: hand_up(presenter, edge_viewer.pid), 10)
        await edge_viewer.wait_for(lambda: not edge_viewer.outbox.in_flight and not edge_viewer.outbox.waiting, 10)
        # a late viewer on an edge node gets the page as it is
        late = SessionClient(three.nodes[2].ws(ROOM), three.token(ROOM, Role.VIEWER, "late"), Role.VIEWER)
        viewers.append(late)
        await late.connect(timeout=10)
        await late.wait_for(has_strokes(late, 5), 10)
        assert board(late) == expected
    finally:
        await presenter.close()
        for viewer in viewers:
            await viewer.close()
