"""The bounded send queue: refuses past its bound, but a catch-up does not count against it."""

from __future__ import annotations

from sessionserver.sendqueue import SendQueue


async def test_bound_and_exemptions() -> None:
    queue = SendQueue(max_frames=2)
    queue.put_unbounded([b"c1", b"c2", b"c3"])  # a join's catch-up
    assert queue.put(b"a") and queue.put(b"b")
    assert not queue.put(b"c")  # two live frames already wait
    assert await queue.get_batch() == [b"c1", b"c2", b"c3", b"a", b"b"]
    assert queue.put(b"d") and queue.put(b"e") and not queue.put(b"f")
    queue.finish(4010, "slow consumer", [b"bye"])
    assert queue.put(b"ignored")  # finished: frames no longer matter and are dropped
    assert await queue.get_batch() == [b"d", b"e", b"bye"]
    assert queue.closed and queue.close_code == 4010
    assert await queue.get_batch() == []  # finished and empty: the writer closes
