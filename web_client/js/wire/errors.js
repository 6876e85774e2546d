// Error codes and the protocol's exception (wire/errors.py).
//
// Every error that reaches a client is an Error frame with a stable numeric code and a sentence;
// the codes are documented in docs/protocol.md (section 7) and never reused.

export const ErrorCode = Object.freeze({
  BAD_FRAME: 1001, UNKNOWN_TYPE: 1002, FRAME_TOO_LARGE: 1003, TOO_MANY_POINTS: 1004, OUT_OF_RANGE: 1005,
  INVALID_FIELD: 1006, RATE_LIMITED: 1007, UNKNOWN_STROKE: 1008, PAGE_LIMIT: 1009, DUPLICATE_STROKE: 1010,
  UNKNOWN_PAGE: 1011, STROKE_LIMIT: 1012, NOT_JOINED: 1013, ALREADY_JOINED: 1014, STROKE_GAP: 1015,
  BAD_SDP: 1016, TOO_MANY_CANDIDATES: 1017, BAD_CANDIDATE: 1018, RTC_FAILED: 1019,
  FORBIDDEN: 1020, // the sender's role has no right to this op or to publish audio
  ROOM_INK_LIMIT: 1021, // the room holds max_room_ink_bytes of ink already
  NOTHING_TO_RESTORE: 1022, // a Restore of a page with no cleared layer left
  AUTH_FAILED: 2001, TOKEN_EXPIRED: 2002, WRONG_SESSION: 2003, WRONG_SEAT: 2004, UNSUPPORTED_VERSION: 2005,
  JOIN_TIMEOUT: 2006,
  SESSION_ENDED: 2007, // the session has ended: no join, no op
  TOO_MANY_JOINS: 2008, // more than max_joins_per_minute joins of this participant
  ROOM_FULL: 2009, // the room holds as many participants of this role as it may
  MOVED: 2010, // the room lives on another node: `message` is the URL to join it at (close 4013)
  SERVER_BUSY: 2011, // the server is overloaded: retry in N s, as the message says (close 4014)
  REPLACED: 3001, TOO_MANY_ERRORS: 3003,
  INTERNAL_ERROR: 3004, // a fault in the server; the client resumes (close 1011)
});

/** WebSocket close codes (4000-4999) used when a connection must end. */
export const CloseCode = Object.freeze({
  PROTOCOL_VIOLATION: 4000, AUTH_FAILED: 4001, TOKEN_EXPIRED: 4002, FORBIDDEN: 4003, UNSUPPORTED_VERSION: 4004,
  JOIN_TIMEOUT: 4005, SESSION_ENDED: 4006, TOO_MANY_JOINS: 4007, RATE_LIMITED: 4008, REPLACED: 4009,
  SLOW_CONSUMER: 4010, FRAME_TOO_LARGE: 4011, ROOM_FULL: 4012, MOVED: 4013, SERVER_BUSY: 4014,
});

export const NORMAL_CLOSE = 1000; // a side really left, or the session ended for it
export const INTERNAL_CLOSE = 1011; // RFC 6455: the server met an unexpected condition; clients resume

/** A frame (or points blob) refused, with the protocol's error code; `ref` is the refused op's cseq. */
export class ProtocolError extends Error {
  constructor(code, message, ref = 0) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.ref = ref;
  }
}
