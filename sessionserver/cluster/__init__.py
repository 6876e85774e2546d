"""Several session server nodes on one Redis: who is alive and how loaded (``registry``), which
node a room lives on (``directory``, an atomic claim), and where a new room goes (``placement``).
The choices are pure functions of what Redis holds and the time passed in; the Redis calls are
the thin shell. See docs/cluster.md."""

from .directory import RoomDirectory
from .placement import NodeLoad, choose_node
from .registry import NodeRegistry

__all__ = ["NodeLoad", "NodeRegistry", "RoomDirectory", "choose_node"]
