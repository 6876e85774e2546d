"""What the store must index for each record, derived from the record alone (pure).

A commit removes the entries of the old records that the new ones no longer have and adds the
new ones, in the same atomic step as the records themselves, so an index never disagrees with
the records it points at. Keys here are relative; a store puts its own prefix in front.
"""

from __future__ import annotations

from typing import NamedTuple

from .lifecycle import RequestState, TutorState
from .records import Pool, RequestRecord, TutorRecord

Record = RequestRecord | TutorRecord

POOLS = "pools"  # set: every pool key that ever had a request or a tutor
TUTORS = "tutors"  # set: every tutor id
OPEN = "open"  # zset: request id -> created_at, while not terminal (expiry sweep)
LEASES = "leases"  # zset: request id -> lease expiry, while offered
ONLINE = "online"  # zset: tutor id -> last heartbeat, while not offline
SESSIONS = "sessions"  # hash: session id -> request id
EVENTS = "events"  # pub/sub channel of MatchEvents
OFFER_LOG = "offerlog"  # list: every offer made, for audits and tests
CHANGES = "changes"  # zset: record or hash key -> sequence number of its latest change (working sets)
CHANGES_SEQ = "changes:seq"  # counter: the latest sequence number
CHANGES_FLOOR = "changes:floor"  # the highest sequence number trimmed from CHANGES
BKT_PARAMS = "bkt:params"  # hash: knowledge point -> fitted BKT parameters
OBSERVATIONS = "bkt:obs"  # list: every knowledge-tracing observation, for refitting and export


def record_key(record: Record) -> str:
    return request_key(record.request_id) if isinstance(record, RequestRecord) else tutor_key(record.tutor_id)


def request_key(request_id: str) -> str:
    return f"r:{request_id}"


def tutor_key(tutor_id: str) -> str:
    return f"t:{tutor_id}"


def queue_key(pool: Pool) -> str:
    return f"queue:{pool.key}"


def available_key(pool: Pool) -> str:
    return f"avail:{pool.key}"


def student_key(student_id: str) -> str:
    return f"student:{student_id}"


def expertise_key(tutor_id: str) -> str:
    return f"exp:{tutor_id}"


def pairs_key(student_id: str) -> str:
    return f"pairs:{student_id}"


def knowledge_key(student_id: str) -> str:
    return f"ks:{student_id}"


def population_key(subject: str, band: str) -> str:
    return f"pop:{subject}|{band}"


KNOWLEDGE_STUDENTS = "ks:students"  # set: every student with a knowledge state


class Entry(NamedTuple):
    """One index entry (a tuple: a commit's diff of thousands of them hashes and sorts in C)."""

    kind: str  # "z" sorted set, "s" set, "h" hash
    key: str
    member: str
    value: str = ""  # the score of a "z" entry (as text), the value of an "h" entry


def entries(record: Record | None) -> set[Entry]:
    if record is None:
        return set()
    if isinstance(record, RequestRecord):
        return _request_entries(record)
    return _tutor_entries(record)


def _request_entries(r: RequestRecord) -> set[Entry]:
    pool, created = r.pool, repr(r.created_at)
    out = {Entry("s", POOLS, pool.key), Entry("z", student_key(r.student_id), r.request_id, created)}  # all of theirs
    if r.session_id is not None:
        out.add(Entry("h", SESSIONS, r.session_id, r.request_id))
    if r.state.terminal:
        return out
    out.add(Entry("z", OPEN, r.request_id, created))
    if r.state is RequestState.QUEUED:
        out.add(Entry("z", queue_key(pool), r.request_id, created))
    elif r.state is RequestState.OFFERED and r.offer is not None:
        out.add(Entry("z", LEASES, r.request_id, repr(r.offer.expires_at)))
    return out


def _tutor_entries(t: TutorRecord) -> set[Entry]:
    out = {Entry("s", TUTORS, t.tutor_id)} | {Entry("s", POOLS, p.key) for p in t.teaches}
    if t.state is not TutorState.OFFLINE:
        out.add(Entry("z", ONLINE, t.tutor_id, repr(t.last_seen)))
    if t.state is TutorState.AVAILABLE:
        out |= {Entry("z", available_key(p), t.tutor_id, repr(t.available_since)) for p in t.teaches}
    return out
