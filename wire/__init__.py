"""The tutorwire wire protocol: a sans-I/O core (no asyncio, no sockets).

Bytes from the network go through ``decode_frame`` and become frozen message dataclasses or a
``ProtocolError``; messages become bytes with ``encode``. See ``docs/protocol.md``. This package
depends on msgpack alone: the server, the recordings, the pen gateway and outside clients all
speak the protocol through it.
"""

from .codec import decode_frame, encode, event_body, pack, to_wire
from .errors import INTERNAL_CLOSE, NORMAL_CLOSE, CloseCode, ErrorCode, FatalProtocolError, ProtocolError
from .ink import HAS_PRESSURE, HAS_TILT, Point, PointState, decode_points, encode_points
from .limits import CLEAR_LAYERS_KEPT, Limits
from .messages import *  # noqa: F403
from .messages import PROTOCOL_VERSION, CatchUp, Message, MsgType, RosterEntry, Tool
from .roles import (
    ALL_RIGHTS,
    BOARD_RIGHTS,
    CLASS_RIGHTS,
    GRANTABLE,
    ONE_ON_ONE_RIGHTS,
    STAGE_RIGHTS,
    Rights,
    Role,
    RoomKind,
)
from .stream import StreamDecoder, frame_bytes

__all__ = [
    "ALL_RIGHTS", "BOARD_RIGHTS", "CLASS_RIGHTS", "CLEAR_LAYERS_KEPT", "GRANTABLE",
    "HAS_PRESSURE", "HAS_TILT", "INTERNAL_CLOSE", "NORMAL_CLOSE",
    "ONE_ON_ONE_RIGHTS",
    "PROTOCOL_VERSION", "CatchUp", "CloseCode", "ErrorCode", "FatalProtocolError", "Limits", "Message",
    "MsgType", "Point", "PointState", "ProtocolError", "Rights", "Role", "RoomKind", "RosterEntry",
    "STAGE_RIGHTS", "StreamDecoder", "Tool", "decode_frame", "decode_points", "encode", "encode_points", "event_body",
    "frame_bytes", "pack", "to_wire",
]
