"""Live classes: the catalogue of scheduled classes (who teaches, when, who may join, the class
code), joining a class's room, and attendance. A sans-I/O core (time passed in) over a store
interface; ``sessionserver/classes_api.py`` is its HTTP shell. See docs/classes.md."""

from .catalogue import ClassCatalogue, JoinSeat
from .errors import ClassError, Conflict, Forbidden, NotFound, ValidationFailed
from .model import Audience, AudienceKind, ClassRecord, ClassState
from .settings import ClassSettings
from .store import ClassStore, MemoryClassStore

__all__ = [
    "Audience", "AudienceKind", "ClassCatalogue", "ClassError", "ClassRecord", "ClassSettings", "ClassState",
    "ClassStore", "Conflict", "Forbidden", "JoinSeat", "MemoryClassStore", "NotFound", "ValidationFailed",
]
