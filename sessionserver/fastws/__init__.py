"""The session WebSocket on picows, on uvicorn's port: uvicorn parses the HTTP upgrade and hands
the connection over (``upgrade``); picows frames it (``link``); ``sessionserver.connection``
drives the session machine. HTTP, the pages and every other WebSocket path stay on Starlette."""

from .link import SessionLink, ws_frame
from .upgrade import SessionRoute, upgrade_protocol

__all__ = ["SessionLink", "SessionRoute", "upgrade_protocol", "ws_frame"]
