"""Our own unacknowledged page ops, taken off a ``Replica`` and put back around another's event.

A client applies its ops when it makes them, before the server has sequenced them. Another
participant's event that arrives while ours are unacknowledged was sequenced before them: the
server sends a client every event it sequenced before that client's op ahead of the op's ``Ack``
(docs/protocol.md 10.2). Ink of different strokes commutes, so most events simply apply; a
``Clear``, a ``Restore`` and an ``Undo`` do not. Without care a tutor's Clear takes the student's
stroke into its layer while the student's next points (sequenced before the Clear) are still on
the way, and they then cannot be applied; or another's stroke begun just before our Clear stays
on our page although the room cleared it. ``rebase`` applies such an event beneath our
unacknowledged ops: it takes them off (newest first), applies the event, and puts them back
(oldest first), so the pages hold what the room holds, in the room's order.

Every unacknowledged op of ours is tried again on top after each such event, one that did not
apply included: whether it applies depends on what the server sequenced before it, and that is
only known when it is acknowledged (a Restore that found nothing to bring back finds the layer of
a Clear that arrives next; an Undo of a stroke a Clear took does not apply while it is cleared).

``apply_own`` applies one of our ops and returns what ``take_off`` needs to undo it exactly; a
refused op is taken off for good (``refuse``). Points and stroke ends are never taken off: they
live in their stroke, which persists (an ``Applied`` is only made for a stroke's begin, a clear,
a restore and an undo).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from . import messages as m
from .errors import ProtocolError
from .limits import CLEAR_LAYERS_KEPT
from .replica import Replica, ReplicaStroke, StrokeKey

T = TypeVar("T")
Layer = dict[StrokeKey, ReplicaStroke]

REBASED = (m.StrokeBegin, m.Clear, m.Restore, m.Undo)  # ops of ours a rebase takes off and puts back
ORDERED = (m.Clear, m.Restore, m.Undo)  # ops that do not commute with the events of others
PAGE_OPS = (m.StrokeBegin, m.StrokePoints, m.StrokeEnd, m.Clear, m.Restore, m.Undo)


@dataclass(slots=True)
class Applied:
    """What applying one of our ops did to the pages (``live``: it is applied now)."""

    op: m.StrokeBegin | m.Clear | m.Restore | m.Undo
    live: bool = True
    layer: Layer | None = None  # Clear: the layer it pushed (None: the page was empty); Restore: the one it took
    dropped: Layer | None = None  # Clear: the oldest layer it pushed out, past CLEAR_LAYERS_KEPT
    ended: list[ReplicaStroke] = field(default_factory=list)  # Clear: the open strokes it ended
    removed: ReplicaStroke | None = None  # Undo: the stroke it took
    index: int = -1  # Undo: the stroke's place in its page's drawing order
    lifted: ReplicaStroke | None = None  # StrokeBegin: the stroke while it is off its page


def apply_own(replica: Replica, op: m.Op) -> Applied | None:
    """Apply our ``op``: an ``Applied`` for the ops a rebase takes off (``live`` says whether it
    applied), ``None`` for the rest (``ProtocolError`` if one of those does not apply)."""
    if not isinstance(op, REBASED):
        replica.apply_local(replica.pid, op)
        return None
    rec = Applied(op)
    try:
        _apply(replica, rec)
    except ProtocolError:
        rec.live = False  # tried again at each rebase: it may apply where the server puts it
    return rec


def _apply(replica: Replica, rec: Applied) -> None:
    op = rec.op
    rec.live = True
    if isinstance(op, m.Clear):
        page = replica.page(op.page)
        rec.layer, rec.dropped, rec.ended = None, None, []
        if page:
            rec.ended = [s for s in page.values() if not s.ended]
            layers = replica.cleared.setdefault(op.page, [])
            rec.dropped = layers[0] if len(layers) >= CLEAR_LAYERS_KEPT else None
        replica.apply_local(replica.pid, op)
        if page:
            rec.layer = page  # the page's dict became its newest layer
    elif isinstance(op, m.Restore):
        kept = replica.cleared.get(op.page)
        rec.layer = kept[-1] if kept else None
        replica.apply_local(replica.pid, op)
    elif isinstance(op, m.Undo):
        author = op.author or replica.pid
        stroke = replica.find(author, op.stroke)
        rec.index = list(replica.pages[stroke.page]).index((author, op.stroke))
        replica.apply_local(replica.pid, op)
        rec.removed = stroke
    else:
        replica.apply_local(replica.pid, op)


def take_off(replica: Replica, rec: Applied) -> None:
    """Undo what applying ``rec.op`` did (ops applied after it are off already, or do not
    touch what it did)."""
    if not rec.live:
        return
    rec.live = False
    op = rec.op
    if isinstance(op, m.StrokeBegin):
        page = replica.pages[op.page] if op.page < len(replica.pages) else {}
        rec.lifted = page.pop((replica.pid, op.stroke), None)
    elif isinstance(op, m.Clear):
        layers = replica.cleared.get(op.page, [])
        at = next((i for i, layer in enumerate(layers) if layer is rec.layer), -1)
        if rec.layer is None or at < 0:
            return  # an empty page's Clear pushed nothing (or its layer is gone)
        del layers[at]
        if rec.dropped is not None:
            layers.insert(0, rec.dropped)
        for s in rec.ended:
            s.ended = False
        back = dict(rec.layer)
        back.update(replica.pages[op.page])  # beneath what arrived since
        replica.pages[op.page] = back
    elif isinstance(op, m.Restore):
        if rec.layer is not None:  # back as the same layer, so a Clear's take_off finds it
            page = replica.pages[op.page]
            for key in rec.layer:
                page.pop(key, None)
            replica.cleared.setdefault(op.page, []).append(rec.layer)
    elif rec.removed is not None:
        author = op.author or replica.pid
        if replica.find_any(author, op.stroke) is None and rec.removed.page < len(replica.pages):
            items = list(replica.pages[rec.removed.page].items())
            items.insert(max(0, min(rec.index, len(items))), ((author, op.stroke), rec.removed))
            replica.pages[rec.removed.page] = dict(items)


def put_back(replica: Replica, rec: Applied) -> None:
    """Apply ``rec.op`` again, on top; it stays off when it no longer applies (the server
    refuses it too: an Undo of a stroke the event cleared, a Restore with nothing left)."""
    op = rec.op
    if isinstance(op, m.StrokeBegin):  # the same stroke object, with its points
        stroke, rec.lifted = rec.lifted, None
        if stroke is not None and op.page < len(replica.pages):
            replica.pages[op.page][(replica.pid, op.stroke)] = stroke
            rec.live = True
        return
    try:
        _apply(replica, rec)
    except ProtocolError:
        rec.live = False


def _beneath(replica: Replica, recs: Sequence[Applied], apply: Callable[[], T]) -> T:
    """``apply()`` with ``recs`` (in cseq order) taken off, newest first, and put back after it."""
    for rec in reversed(recs):
        take_off(replica, rec)
    try:
        return apply()
    finally:
        for rec in recs:
            put_back(replica, rec)


def refuse(replica: Replica, later: Sequence[Applied], rec: Applied) -> None:
    """Our op ``rec`` was refused: take it off for good, beneath ``later``, the ops we made after
    it (in cseq order), which are taken off and put back around it."""
    _beneath(replica, later, lambda: take_off(replica, rec))


def rebase(replica: Replica, pending: Iterable[Applied], body: object, apply: Callable[[], T]) -> T:
    """``apply()`` (another's event with ``body``) beneath ``pending``, our unacknowledged ops in
    cseq order, when order matters; what ``apply`` returns. ``pending`` is only read for a page op."""
    moved = list(pending) if isinstance(body, PAGE_OPS) else []
    needed = moved and (isinstance(body, (*ORDERED, m.StrokeBegin)) or any(isinstance(r.op, ORDERED) for r in moved))
    if not needed:
        return apply()
    replica.rebases += 1
    return _beneath(replica, moved, apply)
