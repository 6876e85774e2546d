"""ICE for one WebRTC leg: which sockets it binds, which datagrams it hears, and ICE restart.

Gathering, per leg and without touching module globals: ``IceGathering.take_over`` replaces an ICE
connection's ``get_component_candidates`` with one that binds exactly ``RtcConfig.host_addresses``
(aioice would scan every interface and skip 127.0.0.1), inside ``udp_port_min``..``udp_port_max``
when set (aioice 0.13 binds port 0 only; see aiortc/aioice#47), with sockets
(``GuardedStunProtocol``) that drop datagrams from addresses the ``RemoteAddressPolicy`` refuses.
STUN and TURN candidates are gathered as aioice does. Call it for every ICE transport of the peer
connection before that transport gathers, i.e. before ``setLocalDescription``.

ICE restart: aiortc cannot restart ICE. When an offer brings new ICE credentials, ``restart_ice``
swaps the credentials on the leg's aioice connection (and makes new ones of the server's own for
the answer) and re-opens it to remote candidates; the browser's checks then move the selected pair:
aioice, as the controlled agent, learns the new pair from the browser's checks and switches to it
once nominated. DTLS and SRTP carry on. A connection that already failed cannot be restarted
(``RTC_FAILED``); the client then gets a new leg.

Private aiortc/aioice API used, so both are pinned exactly (aiortc==1.16.0, aioice==0.13.0) and
``tests/sessionserver/test_rtc_leg.py::test_private_hooks_are_as_pinned`` fails when any of it changes:
``RTCIceTransport._connection``, ``RTCIceGatherer._remote_candidates_end``, and on aioice's
``Connection``: ``get_component_candidates`` (replaced per instance), ``_protocols``,
``_local_username``, ``_local_password``, ``_remote_candidates_end``, ``_remote_candidates``.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
from collections.abc import Callable

from aioice import Candidate, Connection, stun, turn
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, relayed_candidate, server_reflexive_candidate
from aioice.utils import random_string
from aiortc import RTCIceServer, RTCPeerConnection
from aiortc.rtcicetransport import RTCIceTransport

from .rtc_config import IceServer, RemoteAddressPolicy, RtcConfig, RtcError, RtcErrorCode

__all__ = [
    "GuardedStunProtocol",
    "IceGathering",
    "aiortc_ice_servers",
    "bind_udp",
    "primary_ice_transport",
    "restart_ice",
]

logger = logging.getLogger(__name__)


def aiortc_ice_servers(servers: tuple[IceServer, ...]) -> list[RTCIceServer]:
    """``servers`` as aiortc's ``RTCConfiguration(iceServers=...)`` takes them."""
    return [RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential) for s in servers]


class GuardedStunProtocol(StunProtocol):
    """aioice's socket protocol, dropping datagrams whose source the policy refuses (answers to our
    own STUN transactions excepted: a STUN or TURN server may sit anywhere). ``on_refused`` is
    called for each datagram dropped."""

    def __init__(self, connection: Connection, policy: RemoteAddressPolicy, on_refused: Callable[[], None]) -> None:
        super().__init__(connection)
        self._policy = policy
        self._on_refused = on_refused

    def datagram_received(self, data: bytes | str, addr: tuple[object, ...]) -> None:
        host = str(addr[0])
        if not self._policy.allows_host(host) and not self._answers_our_request(data):
            self._on_refused()
            return
        super().datagram_received(data, addr)

    def _answers_our_request(self, data: bytes | str) -> bool:
        if not isinstance(data, bytes):
            return False
        try:
            message = stun.parse_message(data)
        except ValueError:
            return False
        return message.transaction_id in self.transactions


async def bind_udp(
    factory: Callable[[], StunProtocol], address: str, port_min: int, port_max: int
) -> tuple[asyncio.DatagramTransport, StunProtocol]:
    """Bind a UDP socket on ``address``: any port for 0/0, else the first free one in the range,
    starting at a random port so that legs do not all probe the same ones. ``OSError`` when none is
    free (or binding fails for another reason than a taken or forbidden port)."""
    loop = asyncio.get_running_loop()
    if (port_min, port_max) == (0, 0):
        return await loop.create_datagram_endpoint(factory, local_addr=(address, 0))
    count = port_max - port_min + 1
    start = random.randrange(count)
    for i in range(count):
        port = port_min + (start + i) % count
        try:
            return await loop.create_datagram_endpoint(factory, local_addr=(address, port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
    raise OSError(errno.EADDRINUSE, f"no free UDP port in {port_min}-{port_max} on {address}")


class IceGathering:
    """Gathering on the ICE connections of one leg, and the count of datagrams its sockets refused.

    ``take_over`` each ICE transport (again is harmless: a connection is taken over once);
    ``release`` when the leg closes. A host address that cannot be bound is logged and left out;
    with none bound the answer carries no candidates, which the leg reports as ``RTC_FAILED``.
    """

    def __init__(self, config: RtcConfig, policy: RemoteAddressPolicy) -> None:
        self._config = config
        self._policy = policy
        self._connections: list[Connection] = []
        self._refused = 0

    @property
    def datagrams_refused(self) -> int:
        """UDP datagrams dropped because the policy refuses their source."""
        return self._refused

    def take_over(self, transport: RTCIceTransport) -> None:
        connection = transport._connection
        if not any(c is connection for c in self._connections):
            self._take_over(connection)
            self._connections.append(connection)

    def release(self) -> None:
        self._connections.clear()

    def _count_refused(self) -> None:
        self._refused += 1

    def _take_over(self, connection: Connection) -> None:
        config = self._config

        def guarded() -> StunProtocol:
            return GuardedStunProtocol(connection, self._policy, self._count_refused)

        async def get_component_candidates(component: int, addresses: list[str], timeout: int = 5) -> list[Candidate]:
            # ``addresses`` is aioice's scan of every interface: ignored, we gather on ours only.
            candidates: list[Candidate] = []
            hosts: list[StunProtocol] = []
            for address in config.host_addresses:
                try:
                    transport, protocol = await bind_udp(guarded, address, config.udp_port_min, config.udp_port_max)
                except OSError as exc:
                    logger.warning("RtcLeg could not bind %s: %s", address, exc)
                    continue
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE)
                host, port = transport.get_extra_info("sockname")[:2]
                protocol.local_candidate = Candidate(
                    foundation=candidate_foundation("host", "udp", host),
                    component=component,
                    transport="udp",
                    priority=candidate_priority(component, "host"),
                    host=host,
                    port=port,
                    type="host",
                )
                hosts.append(protocol)
                candidates.append(protocol.local_candidate)
            connection._protocols += hosts

            tasks: list[asyncio.Task[tuple[Candidate, StunProtocol | None]]] = []
            if connection.stun_server:
                for protocol in hosts:
                    if ipaddress.ip_address(protocol.local_candidate.host).version == 4:
                        tasks.append(asyncio.create_task(server_reflexive_candidate(protocol, connection.stun_server)))
            if connection.turn_server:
                tasks.append(
                    asyncio.create_task(
                        relayed_candidate(
                            component=component,
                            hide_related_address=False,
                            protocol_factory=guarded,
                            turn_server=connection.turn_server,
                            turn_username=connection.turn_username,
                            turn_password=connection.turn_password,
                            turn_ssl=connection.turn_ssl,
                            turn_transport=connection.turn_transport,
                        )
                    )
                )
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=timeout)
                for task in done:
                    if task.exception() is None:
                        candidate, relay = task.result()
                        candidates.append(candidate)
                        if relay is not None:
                            connection._protocols.append(relay)
                for task in pending:
                    task.cancel()
            return candidates

        connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


def primary_ice_transport(pc: RTCPeerConnection) -> RTCIceTransport:
    """The ICE transport every section is bundled onto (the first transceiver's)."""
    return pc.getTransceivers()[0].receiver.transport.transport


def restart_ice(pc: RTCPeerConnection, credentials: tuple[str, str]) -> None:
    """Take the offer's new ICE ``credentials`` (ufrag, password) on the existing ICE connection of
    ``pc`` and make new ones of the server's own for the answer (see the module docstring). Call it
    before ``setRemoteDescription`` with the restarting offer. ``RtcError`` (RTC_FAILED) when the
    connection already failed or closed."""
    transport = primary_ice_transport(pc)
    connection = transport._connection
    if transport.state in ("failed", "closed") or pc.connectionState in ("failed", "closed"):
        raise RtcError(RtcErrorCode.RTC_FAILED, "the media connection has failed; start a new one")
    connection.remote_username, connection.remote_password = credentials
    connection._local_username = random_string(4)
    connection._local_password = random_string(22)
    transport.iceGatherer._remote_candidates_end = False
    connection._remote_candidates_end = False
