"""The tutorwire wire protocol: a sans-I/O core (no asyncio, no sockets).

Bytes from the network go through ``decode_frame`` and become frozen message dataclasses or a
``ProtocolError``; messages become bytes with ``encode``. See ``docs/protocol.md``.
"""

from .codec import decode_frame, encode, event_body, pack, to_wire
from .errors import CloseCode, ErrorCode, FatalProtocolError, ProtocolError
from .ink import HAS_PRESSURE, HAS_TILT, Point, PointState, decode_points, encode_points
from .limits import Limits
from .messages import *  # noqa: F403
from .messages import PROTOCOL_VERSION, CatchUp, Message, MsgType, Seat, Tool
from .stream import StreamDecoder, frame_bytes

__all__ = [
    "HAS_PRESSURE", "HAS_TILT", "PROTOCOL_VERSION", "CatchUp", "CloseCode", "ErrorCode",
    "FatalProtocolError", "Limits", "Message", "MsgType", "Point", "PointState", "ProtocolError",
    "Seat", "StreamDecoder", "Tool", "decode_frame", "decode_points", "encode", "encode_points",
    "event_body", "frame_bytes", "pack", "to_wire",
]
