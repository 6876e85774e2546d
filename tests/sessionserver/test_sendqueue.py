"""The bounded send queue: refuses past its bounds in frames and in bytes; a join's catch-up is
read only as the writer has room, counts against the byte bound, and goes before later frames."""

from __future__ import annotations

from collections.abc import Iterator

from sessionserver.sendqueue import FRAME_OVERHEAD_BYTES, SendQueue


async def test_frame_bound() -> None:
    queue = SendQueue(max_frames=2)
    assert queue.put(b"a") and queue.put(b"b")
    assert not queue.put(b"c")  # two frames already wait
    assert await queue.get_batch() == [b"a", b"b"]
    assert queue.put(b"d") and queue.put(b"e") and not queue.put(b"f")
    queue.finish(4010, "slow consumer", [b"bye"])
    assert queue.put(b"ignored")  # finished: frames no longer matter and are dropped
    assert await queue.get_batch() == [b"d", b"e", b"bye"]
    assert queue.closed and queue.close_code == 4010
    assert await queue.get_batch() == []  # finished and empty: the writer closes


async def test_byte_bound_counts_the_batch_being_written() -> None:
    cost = 100 + FRAME_OVERHEAD_BYTES
    queue = SendQueue(max_frames=1000, max_bytes=3 * cost)
    frame = b"x" * 100
    assert queue.put(frame) and queue.put(frame) and queue.put(frame)
    assert not queue.put(b"y")  # 3 frames of 164 counted bytes fill 492
    assert queue.queued_bytes == 3 * cost
    assert len(await queue.get_batch()) == 3
    assert queue.queued_bytes == 3 * cost  # still being written: still counted
    assert not queue.put(frame)  # a writer stuck on a send keeps the queue full
    queue.put_media(b"audio")  # the audio lane has its own bound and drops its oldest
    assert await queue.get_batch() == [b"audio"]  # asking again means the batch went out
    assert queue.queued_bytes == 0 and queue.put(frame)


async def test_catch_up_is_read_as_there_is_room_and_goes_first() -> None:
    read: list[int] = []

    def source() -> Iterator[bytes]:
        for i in range(10):
            read.append(i)
            yield bytes([i]) * 36  # 100 counted bytes each

    queue = SendQueue(max_frames=100, max_bytes=1000)
    queue.put_catch_up(b"W" * 36, source())
    assert read == []  # nothing is read until the writer asks
    assert queue.put(b"live1")
    batch = await queue.get_batch()
    assert batch[0] == b"W" * 36 and b"live1" not in batch
    assert len(batch) == 5 and read == [0, 1, 2, 3]  # up to half the bound at a time
    assert queue.put(b"live2")
    rest: list[bytes] = []
    while b"live2" not in rest:
        rest += await queue.get_batch()
    assert rest == [bytes([i]) * 36 for i in range(4, 10)] + [b"live1", b"live2"]  # live after catch-up


async def test_finish_drops_a_pending_catch_up_but_sends_its_welcome_first() -> None:
    queue = SendQueue(max_frames=10, max_bytes=1000)
    queue.put_catch_up(b"welcome", iter([b"c"] * 100))
    queue.put(b"live")
    queue.finish(4006, "session ended", [b"error"])
    assert await queue.get_batch() == [b"welcome", b"live", b"error"]
