"""Rooms, sans-I/O: the session state, the op log and the rules for catching up."""

from .room import Applied, Room

__all__ = ["Applied", "Room"]
