"""Settings and errors of the WebRTC leg, and the rule for which remote addresses it talks to.

Pure: no aiortc here, so settings and signalling can import it cheaply and tests can check the
rules without a peer connection.

Errors: every failure a client can cause raises ``RtcError`` with one ``RtcErrorCode`` and a
sentence, never anything else:

- ``BAD_SDP``: the offer is not a string, is too long, does not parse, carries no usable audio
  m-line, no Opus, or media the leg does not carry (video, data channels).
- ``TOO_MANY_CANDIDATES``: more than ``max_candidates`` distinct remote candidates on one leg.
- ``BAD_CANDIDATE``: a malformed candidate, an mDNS (``.local``) one, a TCP one, one whose address
  the ``RemoteAddressPolicy`` refuses, or one that arrives before the offer.
- ``RTC_FAILED``: the leg could not answer (no local address could be bound, aiortc refused the
  description, the connection already failed or the leg is closed). Make a new leg.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_CANDIDATE_CHARS = 512  # a browser's candidate line is about 100 characters
_FOUNDATION = re.compile(r"[A-Za-z0-9+/]{1,32}")
_CANDIDATE_TYPES = frozenset({"host", "srflx", "relay"})  # what aioice accepts from signalling


class RtcErrorCode(enum.IntEnum):
    """Why the leg refused something; the signalling maps these to protocol error codes."""

    BAD_SDP = 1
    TOO_MANY_CANDIDATES = 2
    BAD_CANDIDATE = 3
    RTC_FAILED = 4


class RtcError(Exception):
    """A refused offer or candidate, or a leg that cannot go on. ``code`` is stable, ``message``
    is a sentence for the client."""

    def __init__(self, code: RtcErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server (``stun:host:port``, ``turn:host:port?transport=udp``, ``turns:...``).
    aiortc uses only the first STUN and the first TURN server it is given."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("an ICE server needs at least one URL")
        for url in self.urls:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"an ICE server URL must be stun:, stuns:, turn: or turns:, not {url!r}")


@dataclass(frozen=True)
class RtcConfig:
    """Limits and addresses of one WebRTC leg. The defaults are loopback only, no STUN/TURN.

    ``host_addresses``: the local addresses ICE binds and offers as host candidates (never the
    machine's other interfaces). ``udp_port_min``/``udp_port_max``: 0/0 lets the kernel pick a
    port; otherwise each leg binds one UDP port per host address inside the inclusive range, so the
    range bounds how many legs can run at once. ``remote_networks``: extra networks (CIDR) whose
    candidates and datagrams are accepted, e.g. a LAN without STUN. ``max_audio_sections``: audio
    m-lines per offer (a browser that removes and re-adds its track adds one each time, and each
    costs a receiver).
    """

    ice_servers: tuple[IceServer, ...] = ()
    host_addresses: tuple[str, ...] = ("127.0.0.1",)
    udp_port_min: int = 0
    udp_port_max: int = 0
    remote_networks: tuple[str, ...] = ()
    max_candidates: int = 32
    max_sdp_bytes: int = 16384
    max_audio_sections: int = 4
    queue_packets: int = 10

    def __post_init__(self) -> None:
        if not self.host_addresses:
            raise ValueError("host_addresses must name at least one local address")
        for address in self.host_addresses:
            ipaddress.ip_address(address)  # ValueError when it is not an IP literal
        for network in self.remote_networks:
            ipaddress.ip_network(network, strict=False)
        if (self.udp_port_min, self.udp_port_max) != (0, 0) and not (
            1024 <= self.udp_port_min <= self.udp_port_max <= 65535
        ):
            raise ValueError("udp_port_min/udp_port_max must be 0/0 or a range within 1024-65535")
        for name in ("max_candidates", "max_sdp_bytes", "max_audio_sections", "queue_packets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class RemoteAddressPolicy:
    """Which remote addresses a leg accepts, in candidates and as the source of datagrams.

    Always: the leg's own ``host_addresses`` and any ``remote_networks``. With ``ice_servers``
    configured (a real deployment, where clients reach the server across NATs): also any global or
    private unicast address, but never loopback, link-local, multicast, unspecified or reserved ones
    unless listed above. Without ``ice_servers`` (the default and the tests): nothing else, so a
    loopback server only ever talks to loopback.
    """

    def __init__(self, config: RtcConfig) -> None:
        self._exact = frozenset(ipaddress.ip_address(a) for a in config.host_addresses)
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in config.remote_networks)
        self._open = bool(config.ice_servers)

    def allows(self, address: IpAddress) -> bool:
        if address in self._exact or any(address in network for network in self._networks):
            return True
        if not self._open:
            return False
        if address.is_loopback or address.is_link_local or address.is_multicast:
            return False
        if address.is_unspecified or address.is_reserved:
            return False
        return address.is_global or address.is_private

    def allows_host(self, host: str) -> bool:
        """``allows`` for an address as a socket reports it; False for anything not an IP."""
        try:
            return self.allows(ipaddress.ip_address(host.split("%", 1)[0]))
        except ValueError:
            return False


@dataclass(frozen=True)
class RemoteCandidate:
    """A remote ICE candidate that passed ``parse_candidate``: UDP, component 1, an IP literal."""

    foundation: str
    component: int
    priority: int
    address: IpAddress
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        """What makes two candidates the same one (aioice ignores a repeated transport address)."""
        return (str(self.address), self.port)


def _bad(message: str) -> RtcError:
    return RtcError(RtcErrorCode.BAD_CANDIDATE, message)


def parse_candidate(text: str) -> RemoteCandidate:
    """Parse a candidate as a browser sends it (``candidate:...``, with or without ``a=``) and check
    it is one the leg could use; ``RtcError`` (BAD_CANDIDATE) otherwise. The address policy is
    checked separately, by the leg."""
    if not isinstance(text, str) or len(text) > MAX_CANDIDATE_CHARS:
        raise _bad(f"a candidate must be a string of at most {MAX_CANDIDATE_CHARS} characters")
    body = text.strip()
    body = body.removeprefix("a=")
    if not body.startswith("candidate:"):
        raise _bad("a candidate must start with 'candidate:'")
    fields = body[len("candidate:") :].split()
    if len(fields) < 8 or fields[6] != "typ":
        raise _bad("a candidate needs foundation, component, transport, priority, address, port and type")
    foundation, component, transport, priority, host, port, _, kind = fields[:8]
    if not _FOUNDATION.fullmatch(foundation):
        raise _bad("a candidate's foundation must be 1 to 32 ice-chars")
    if transport.lower() != "udp":
        raise _bad("only UDP candidates are accepted")
    if kind not in _CANDIDATE_TYPES:
        raise _bad(f"a candidate of type {kind!r} is not accepted")
    if host.lower().rstrip(".").endswith(".local"):
        raise _bad("mDNS (.local) candidates are not resolved; send the address itself")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise _bad("a candidate's address must be an IP address") from None
    if not (component.isdigit() and priority.isdigit() and port.isdigit()):
        raise _bad("a candidate's component, priority and port must be numbers")
    if int(component) != 1:
        raise _bad("only component 1 is used (RTP and RTCP are multiplexed)")
    if not 0 <= int(priority) <= 0xFFFFFFFF or not 1 <= int(port) <= 65535:
        raise _bad("a candidate's priority or port is out of range")
    extensions = dict(zip(fields[8::2], fields[9::2], strict=False))
    related_port = extensions.get("rport")
    return RemoteCandidate(
        foundation=foundation,
        component=1,
        priority=int(priority),
        address=address,
        port=int(port),
        type=kind,
        related_address=extensions.get("raddr"),
        related_port=int(related_port) if related_port is not None and related_port.isdigit() else None,
    )
