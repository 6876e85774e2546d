"""The one way this server opens Redis: a URL (``TUTORWIRE_REDIS_URL``), or Redis Sentinel
(``TUTORWIRE_REDIS_SENTINELS``, ``TUTORWIRE_REDIS_SENTINEL_SERVICE``), so that a primary's failure
is answered by the Sentinels promoting a replica.

Through Sentinel, every new connection asks the Sentinels for the current primary; a command on a
connection to a primary that died fails with ``redis.ConnectionError`` (the caller retries as it
does for any Redis outage) and the next connection goes to the new primary. Commands on a
demoted primary fail with ``ReadOnlyError``, which redis-py's Sentinel pool also answers by
reconnecting."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

SOCKET_TIMEOUT_S = 2.0  # a Redis that does not answer within this is treated as down


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """``"host:port,host:port"`` as address pairs; ``ValueError`` names a bad one."""
    found: list[tuple[str, int]] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not host:port")
        found.append((host, int(port)))
    return found


def redis_client(url: str, sentinels: str = "", service: str = "tutorwire") -> aioredis.Redis:
    """A client of the primary: through the Sentinels when ``sentinels`` names any, else ``url``."""
    hosts = parse_sentinels(sentinels)
    if hosts:
        sentinel = Sentinel(hosts, socket_timeout=SOCKET_TIMEOUT_S,  # type: ignore[no-untyped-call]
                            sentinel_kwargs={"socket_timeout": SOCKET_TIMEOUT_S})
        primary: aioredis.Redis = sentinel.master_for(service, socket_timeout=SOCKET_TIMEOUT_S)
        return primary
    return aioredis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S)
