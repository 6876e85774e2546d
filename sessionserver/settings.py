"""Every setting of the session server, read from ``TUTORWIRE_*`` environment variables.

``Settings.from_env()`` is the only place that reads the environment. Each field's variable is
``TUTORWIRE_`` plus the field name in capitals (``max_frame_bytes`` -> ``TUTORWIRE_MAX_FRAME_BYTES``),
the matcher's ``TUTORWIRE_MATCHER_`` plus its field name (``offer_lease_s`` -> ``TUTORWIRE_MATCHER_OFFER_LEASE_S``);
the README's table lists them all with their defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from matcher.settings import MatcherSettings
from wire import Limits

from .classes.settings import ClassSettings
from .media.rtc_config import IceServer, RtcConfig

PREFIX = "TUTORWIRE_"
MATCHER_PREFIX = "TUTORWIRE_MATCHER_"
CLASS_PREFIX = "TUTORWIRE_CLASS_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


_Group = TypeVar("_Group", Limits, MatcherSettings, ClassSettings)


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    secret: str = ""  # token signing secret; empty means a random one per process
    dev_mode: bool = False  # mints demo tokens at /dev/join; never in production
    dev_token_ttl_s: int = 3600
    oplog_max_events: int = 20_000
    # the op log in bytes too: 20,000 events of 16 ms ink batches (4 points, ~40 B a frame) are
    # under 1 MiB; a room of large frames is held to this and clients further behind get snapshots
    oplog_max_bytes: int = 8 << 20
    # A 3-hour session of continuous writing at 240 Hz is 2,592,000 points; smooth handwriting
    # costs 3 bytes a point (4 with tilt) and a shaky pen about 6, so 2.6 M x 6 B = 15.6 MB, plus
    # 256 B a stroke (one a second: 10,800 strokes, 2.8 MB): about 18 MB. 64 MiB is 3.5x that.
    max_room_ink_bytes: int = 64 << 20  # ink a room takes over its life; past it ink ops get 1021
    max_joins_per_minute: int = 30  # joins of one participant within a minute; past it 2008 / close 4007
    send_queue_max: int = 1_024  # frames queued per connection (4010 past it)
    send_queue_max_bytes: int = 1 << 20  # bytes queued per connection, catch-up included (4010 past it)
    snapshot_part_bytes: int = 65_536  # a page snapshot larger than this goes in several Snapshot frames
    join_timeout_s: float = 10.0
    room_idle_ttl_s: float = 900.0  # an empty room's state is dropped after this long (a later join starts anew)
    session_idle_end_s: float = 900.0  # a session nobody has been in for this long has ended (2007); 0: never
    ended_sessions_max: int = 100_000  # ended session ids remembered (oldest forgotten first), ~100 B each
    ping_interval_s: float = 5.0  # server pings for RTT and device clock offset; 0 disables
    max_errors: int = 20  # refused frames allowed within a minute before the connection is closed
    ack_delay_ms: int = 40  # acks are cumulative: hold one this long so a burst of ops costs one
    close_grace_s: float = 30.0  # a closing session WebSocket's last bytes may take this long; then it is cut
    header_timeout_s: float = 10.0  # an HTTP request's headers must be complete this long after it starts (408)
    max_connections: int = 10_000  # open connections of every kind; one more gets 503 at once (mind ulimit -n)
    allowed_origins: str = ""  # comma-separated origins whose pages may open WebSockets besides this server's own
    # overload shedding (sessionserver/overload.py): past either bound new joins and matcher requests are refused
    overload_lag_ms: float = 100.0  # median event-loop lag over the window; 0: never
    overload_cpu: float = 0.95  # share of a core the event loop's thread used over the window; 0: never
    overload_window_s: float = 2.0
    overload_retry_s: int = 5  # "busy, retry in N s": what a refused client is told to wait
    metrics_token: str = ""  # a bearer token that opens GET /metrics from any address; empty: none
    metrics_networks: str = "127.0.0.0/8,::1/128"  # client networks that may read /metrics without the token
    log_level: str = "info"
    log_format: str = "text"  # "json": one JSON object a line (time, level, logger, message, session_id, ...)
    redis_url: str = ""  # empty: the embedded memory store (one process); set: shared state in Redis
    redis_prefix: str = "tutorwire:"
    redis_sentinels: str = ""  # host:port,...: reach Redis through these Sentinels (not redis_url)
    redis_sentinel_service: str = "tutorwire"  # the primary's name the Sentinels watch
    node_id: str = ""  # set (with Redis): this process is one node of several (docs/cluster.md)
    node_url: str = ""  # this node's public URL for redirects and grants; empty: http://host:port
    node_announce_s: float = 0.5  # how often a node announces its load to Redis
    node_dead_after_s: float = 2.0  # a node silent this long is dead: its rooms are taken over
    node_max_cpu: float = 0.85  # new rooms go to nodes below this CPU (fraction of a core) ...
    node_max_participants: int = 5_000  # ... and below this many participants
    cluster_stream_ttl_s: int = 86_400  # a room's event stream in Redis expires this long after its last write
    cluster_journal_interval_ms: float = 10.0  # rooms' events go to Redis at most this often (durable Acks wait)
    roster_file: str = ""  # a tutor roster (CSV or JSON, docs/roster.md) loaded at start
    api_token_ttl_s: int = 12 * 3600  # lifetime of dev sign-in tokens
    matcher_worker: bool = True  # run a matcher worker in this process
    record: bool = True  # record every session (docs/recordings.md)
    recordings_dir: str = "./recordings"
    recording_flush_s: float = 0.5  # how often recordings are written and synced: at most this much is lost in a crash
    recording_backlog_bytes: int = 64 << 20  # data waiting for the recordings' writer thread; past it a recording stops
    recording_clock_hold_ms: int = 3000  # a speaker's audio waits at most this long for its clock model
    recording_clock_hold_packets: int = 150  # ... and at most this many packets
    recording_clock_settle_samples: int = 5  # clock measurements a speaker's model needs before its audio is placed
    audio_queue_packets: int = 10  # live audio a listener may fall behind by (20 ms each); older ones are dropped
    rtc_ice_servers: str = ""  # STUN/TURN for browsers' WebRTC: JSON list of {"urls", "username", "credential"}
    pairing_code_ttl_s: int = 300  # a writing pad's pairing code works this long, once (sessionserver/pairing.py)
    pairing_max_codes: int = 10_000  # pairing codes outstanding at once; past it 503
    pairing_claims_per_minute: int = 60  # code claims (right or wrong) a server takes a minute; past it 429
    rtc_host_addresses: str = "127.0.0.1"  # local addresses WebRTC binds and offers (comma-separated)
    rtc_udp_port_min: int = 0  # WebRTC UDP ports: 0/0 any, else this inclusive range
    rtc_udp_port_max: int = 0
    rtc_remote_networks: str = ""  # extra networks (CIDR, comma-separated) whose candidates are accepted
    rtc_max_candidates: int = 32  # remote ICE candidates one participant may send (error 1017 past it)
    limits: Limits = field(default_factory=Limits)
    matcher: MatcherSettings = field(default_factory=MatcherSettings)
    classes: ClassSettings = field(default_factory=ClassSettings)

    @property
    def transport_max_frame_bytes(self) -> int:
        """The cap the WebSocket transport enforces (close 1009) far above the protocol's own."""
        return max(4 * self.limits.max_frame_bytes, 1 << 20)

    def signing_secret(self) -> str:
        return self.secret or secrets.token_urlsafe(32)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in ("limits", "matcher", "classes"):
                _read(env, f.name, f.type, values)
        values["limits"] = _group(env, Limits, PREFIX)
        values["matcher"] = _group(env, MatcherSettings, MATCHER_PREFIX)
        values["classes"] = _group(env, ClassSettings, CLASS_PREFIX)
        values.update(overrides)
        return cls(**values)


def _group(env: Mapping[str, str], kind: type[_Group], prefix: str) -> _Group:
    """A nested settings dataclass from the variables ``prefix`` + its field names."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        _read(env, f.name, f.type, values, prefix=prefix)
    try:
        return kind(**values)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _read(env: Mapping[str, str], name: str, kind: Any, into: dict[str, Any], prefix: str = PREFIX) -> None:
    var = prefix + name.upper()
    raw = env.get(var)
    if raw is None:
        return
    kind = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind == "bool":
            low = raw.strip().lower()
            if low not in _TRUE | _FALSE:
                raise ValueError(raw)
            into[name] = low in _TRUE
        elif kind == "int":
            into[name] = int(raw)
        elif kind == "float":
            into[name] = float(raw)
        else:
            into[name] = raw
    except ValueError:
        raise SettingsError(f"{var}={raw!r} is not a valid {kind}") from None


def rtc_config(settings: Settings) -> RtcConfig:
    """The WebRTC leg configuration the settings describe; ``SettingsError`` names a bad one."""
    try:
        raw = json.loads(settings.rtc_ice_servers or "[]")
        if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
            raise ValueError("must be a JSON list of objects")
        servers = tuple(
            IceServer((s["urls"],) if isinstance(s["urls"], str) else tuple(s["urls"]), s.get("username"),
                      s.get("credential"))
            for s in raw
        )
        return RtcConfig(
            ice_servers=servers, host_addresses=_csv(settings.rtc_host_addresses),
            udp_port_min=settings.rtc_udp_port_min, udp_port_max=settings.rtc_udp_port_max,
            remote_networks=_csv(settings.rtc_remote_networks), max_candidates=settings.rtc_max_candidates,
            max_sdp_bytes=settings.limits.max_sdp_bytes, queue_packets=settings.audio_queue_packets,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SettingsError(f"WebRTC settings (TUTORWIRE_RTC_*): {exc}") from None


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())
