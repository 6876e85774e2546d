"""Rooms, sans-I/O: participants and their rights, the session state, the op log and the rules
for catching up."""

from .room import Applied, ParticipantState, Room

__all__ = ["Applied", "ParticipantState", "Room"]
