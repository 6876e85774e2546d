"""``tutorwire matcher-worker``: a matcher worker in a process of its own on a real Redis makes
the offer for a request that a server (or this test, through the matcher's API) put there, and
stops cleanly on SIGTERM; without Redis it refuses to start, saying why."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from matcher import RequestState, TutorState
from matcher.catalogue import catalogue
from matcher.redis_store import RedisStore
from matcher.service import Matcher
from sessionserver.cli import main
from tests.matcherkit import REDIS_URL, tutor

TUTORWIRE = os.path.join(os.path.dirname(sys.executable), "tutorwire")
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def worker() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``tutorwire matcher-worker`` on the machine's Redis, under a prefix of its own."""
    prefix = f"tw-worker-{secrets.token_hex(5)}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env |= {"TUTORWIRE_REDIS_URL": REDIS_URL, "TUTORWIRE_REDIS_PREFIX": prefix}
    proc = subprocess.Popen([TUTORWIRE, "matcher-worker"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "matcher worker running" in line:
                break
        else:
            pytest.fail(f"the worker exited with {proc.wait()}")
        yield proc, prefix
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_standalone_worker_offers_a_waiting_request_to_a_tutor(
        worker: tuple[subprocess.Popen[str], str]) -> None:
    proc, prefix = worker
    store = RedisStore(REDIS_URL, prefix=prefix)
    try:
        matcher = Matcher(store)
        point = next(p.id for p in catalogue().of_kind("point", "math"))
        now = time.time()
        await matcher.upsert_tutor(tutor("t.worker", [("math", "junior")], [point]))
        await matcher.set_availability("t.worker", True, now)
        request = await matcher.create_request("s.worker", {"subject": "math", "grade": 8,
                                                            "knowledge_points": [point]}, now)
        deadline = time.monotonic() + 20
        while True:  # another process makes the offer: its store is all there is to watch
            seen = await matcher.request(request.request_id)
            if seen.state is RequestState.OFFERED:
                break
            assert time.monotonic() < deadline, f"no offer made; the request is {seen.state}"
            await asyncio.sleep(0.1)
        t = await matcher.tutor("t.worker")
        assert t.state is TutorState.OFFERED and t.offer is not None and t.offer.request_id == request.request_id
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        await store.delete_all()
        await store.close()


def test_a_worker_without_redis_says_what_it_needs(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TUTORWIRE_REDIS_URL", raising=False)
    assert main(["matcher-worker"]) == 2
    assert "TUTORWIRE_REDIS_URL" in capsys.readouterr().err
