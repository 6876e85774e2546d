"""A process of class viewers for the tests: ``python -m tests.class_viewers URL ROOM COUNT FIRST
STROKES SECRET``. It joins COUNT viewers (users ``v-FIRST`` ...), prints ``joined`` once all are in,
waits until each has STROKES ended strokes of the presenter, and prints one JSON line: for each
viewer the stroke ids in the order received and whether its event stream had no gap."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from sessionserver.auth import TokenSigner
from sessionserver.client import SessionClient
from wire import Role


async def main(url: str, room: str, count: int, first: int, strokes: int, secret: str) -> None:
    signer = TokenSigner(secret)
    viewers = [SessionClient(f"{url}/ws/session/{room}",
                             signer.mint(room, f"v-{first + i}", Role.VIEWER, int(time.time()) + 600), Role.VIEWER)
               for i in range(count)]
    await asyncio.gather(*(v.connect(timeout=30) for v in viewers))
    print("joined", flush=True)

    def ended(v: SessionClient) -> list[int]:
        presenter = v.replica.pid_of(Role.PRESENTER)
        if presenter is None:
            return []
        return [s.stroke for s in v.replica.strokes(presenter) if s.ended]

    async def all_strokes(v: SessionClient) -> None:
        await v.wait_for(lambda: len(ended(v)) >= strokes, timeout=60)

    await asyncio.gather(*(all_strokes(v) for v in viewers))
    report = [{"user": f"v-{first + i}", "strokes": ended(v), "last_seq": v.replica.last_seq}
              for i, v in enumerate(viewers)]
    print(json.dumps(report), flush=True)
    await asyncio.gather(*(v.close() for v in viewers))


if __name__ == "__main__":
    url, room, count, first, strokes, secret = sys.argv[1:7]
    asyncio.run(main(url, room, int(count), int(first), int(strokes), secret))
