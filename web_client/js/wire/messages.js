// The messages of the wire protocol (wire/messages.py), as plain objects.
//
// A message is `{type: 'StrokeBegin', cseq, stroke, ...}`: the type's name and the Python
// dataclass fields in camelCase, in the same order. Client ops carry `cseq`, the sender's own
// strictly increasing number; inside an `Event` the server relays an op with `cseq: 0`.
//
//   Join {version, token, role, lastSeq, epoch}
//   Welcome {version, pid, role, userId, sessionId, sessionMs, lastSeq, ackedCseq, mode, pageCount,
//            epoch, ratePerS, rateBurst, rights,
//            roster: [{pid, userId, role, online, muted, currentPage, handMs, stage, granted}]}
//   Event {seq, sessionMs, pid, cseq, body}   body: an op (cseq 0), Presence {userId, online, role, left}
//     or Roster {changes: [{pid, userId, online, role}]} (a class's viewers, coalesced)
//   Snapshot {seq, page, strokes: [{pid, stroke, tool, color, width, flags, deviceT0, count, blob, ended, layer}],
//            part, last}: a big page comes in parts 0, 1, ... of one page and seq, `last` on the final one;
//            a stroke's `layer` is 0 on the page, k >= 1 in the page's k-th kept cleared layer
//   AudioRelay {pid, seq, captureTs, sessionMs, payload}
//   AudioLate {packets: [{seq, captureTs, payload}]}: audio too old to be played live, for the recording

export const PROTOCOL_VERSION = 2; // 2: participants with ids and roles where version 1 had two seats

export const MsgType = Object.freeze({
  Join: 1, Welcome: 2, Snapshot: 3, Event: 4,
  StrokeBegin: 10, StrokePoints: 11, StrokeEnd: 12, PageAdd: 13, PageSwitch: 14, Undo: 15, Clear: 16,
  Presence: 17, Mute: 18, Roster: 19,
  Ping: 20, Pong: 21, Ack: 22, Error: 23, Grant: 24, Restore: 25,
  Audio: 30, AudioRelay: 31, AudioLate: 32,
  RtcOffer: 40, RtcAnswer: 41, RtcCandidate: 42, RtcClose: 43,
  Hand: 50, Question: 51, Stage: 52, Moderate: 53,
});
export const TYPE_NAMES = new Map(Object.entries(MsgType).map(([name, n]) => [n, name]));

export const Tool = Object.freeze({ PEN: 0, HIGHLIGHTER: 1, ERASER: 2 });
export const MAX_TOOL = 2;

/** A class's stage moves (Stage.action) and the presenter's acts (Moderate.action). */
export const StageAction = Object.freeze({ INVITE: 0, ACCEPT: 1, LEAVE: 2 });
export const ModAction = Object.freeze({ MUTE: 0, UNMUTE: 1, REMOVE: 2, LOWER_HAND: 3, LOWER_ALL_HANDS: 4 });
export const QUESTION_MAX_BYTES = 2048;
export const MAX_LATE_PACKETS = 50; // packets in one AudioLate (wire/codec.py)
export const ROSTER_MAX_CHANGES = 200; // changes in one Roster event body (wire/messages.py)

/** How a joining client is brought up to date (Welcome.mode). */
export const CatchUp = Object.freeze({
  REPLAY: 0, // the missing events follow, in order
  SNAPSHOT: 1, // drop local pages; one Snapshot per page follows, then live events
});

// Ops (types 10-16, 18, 24, 25, and a class's 50-53): their fields after cseq, in wire order (Undo's
// `author` is trailing: left out when 0, one's own stroke).
export const OP_FIELDS = Object.freeze({
  StrokeBegin: ['stroke', 'page', 'tool', 'color', 'width', 'flags', 'deviceT0'],
  StrokePoints: ['stroke', 'start', 'count', 'blob'],
  StrokeEnd: ['stroke'],
  PageAdd: ['page'],
  PageSwitch: ['page'],
  Undo: ['stroke', 'author'],
  Clear: ['page'],
  Restore: ['page'],
  Grant: ['pid', 'rights'],
  Mute: ['muted'],
  Hand: ['raised'],
  Question: ['text'],
  Stage: ['pid', 'action'],
  Moderate: ['pid', 'action'],
});
export const OP_TYPES = new Set(Object.keys(OP_FIELDS));

/** Signalling a client sends for its WebRTC leg (never kept or resent). */
export const SIGNAL_TYPES = new Set(['RtcOffer', 'RtcCandidate', 'RtcClose']);

/** Constructors for the messages a client sends. */
export const msg = Object.freeze({
  join: (token, role, lastSeq, epoch) => ({ type: 'Join', version: PROTOCOL_VERSION, token, role, lastSeq, epoch }),
  strokeBegin: (cseq, stroke, page, tool, color, width, flags, deviceT0) =>
    ({ type: 'StrokeBegin', cseq, stroke, page, tool, color, width, flags, deviceT0 }),
  strokePoints: (cseq, stroke, start, count, blob) => ({ type: 'StrokePoints', cseq, stroke, start, count, blob }),
  strokeEnd: (cseq, stroke) => ({ type: 'StrokeEnd', cseq, stroke }),
  pageAdd: (cseq, page) => ({ type: 'PageAdd', cseq, page }),
  pageSwitch: (cseq, page) => ({ type: 'PageSwitch', cseq, page }),
  undo: (cseq, stroke, author = 0) => ({ type: 'Undo', cseq, stroke, author }),
  clear: (cseq, page) => ({ type: 'Clear', cseq, page }),
  restore: (cseq, page) => ({ type: 'Restore', cseq, page }),
  grant: (cseq, pid, rights) => ({ type: 'Grant', cseq, pid, rights }),
  mute: (cseq, muted) => ({ type: 'Mute', cseq, muted }),
  hand: (cseq, raised) => ({ type: 'Hand', cseq, raised }),
  question: (cseq, text) => ({ type: 'Question', cseq, text }),
  stage: (cseq, pid, action) => ({ type: 'Stage', cseq, pid, action }),
  moderate: (cseq, pid, action) => ({ type: 'Moderate', cseq, pid, action }),
  ping: (ts) => ({ type: 'Ping', ts }),
  pong: (echo, ts) => ({ type: 'Pong', echo, ts }),
  rtcCandidate: (candidate, sdpMid, sdpMlineIndex) => ({ type: 'RtcCandidate', candidate, sdpMid, sdpMlineIndex }),
});
