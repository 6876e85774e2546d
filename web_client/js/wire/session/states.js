// The client's lifecycle with its legal transitions in one place (wire/session/states.py).

export const ClientState = Object.freeze({
  IDLE: 'idle', // made, never connected
  CONNECTING: 'connecting', // the shell is opening a WebSocket
  JOINING: 'joining', // open, Join sent, waiting for the Welcome
  LIVE: 'live', // joined: ops flow, acks come back
  BACKOFF: 'backoff', // the link failed; waiting before the next attempt
  CLOSED: 'closed', // ended normally: we left, the server closed 1000, the session ended
  FAILED: 'failed', // the server refused this client for good (token, role, version, replaced)
});

const C = ClientState;
/**
 * From each state, the states it may go to. The Python table, plus BACKOFF -> FAILED: the
 * browser renews an expired join token (the tutor's page can fetch a fresh one) instead of
 * failing at once, and fails when no fresh token can be had.
 */
export const CLIENT_TRANSITIONS = Object.freeze({
  [C.IDLE]: Object.freeze([C.CONNECTING, C.CLOSED]),
  [C.CONNECTING]: Object.freeze([C.JOINING, C.BACKOFF, C.CLOSED]),
  [C.JOINING]: Object.freeze([C.LIVE, C.BACKOFF, C.FAILED, C.CLOSED]),
  [C.LIVE]: Object.freeze([C.BACKOFF, C.FAILED, C.CLOSED]),
  [C.BACKOFF]: Object.freeze([C.CONNECTING, C.CLOSED, C.FAILED]),
  [C.CLOSED]: Object.freeze([]),
  [C.FAILED]: Object.freeze([]),
});

/** The caller used the machine wrongly (a bug in the caller, not in the peer). */
export class SessionMisuse extends Error {
  constructor(message) {
    super(message);
    this.name = 'SessionMisuse';
  }
}

/** A state change the transition table does not allow. */
export class IllegalTransition extends SessionMisuse {
  constructor(source, target, why = '') {
    super(`ClientState: ${source} -> ${target} is not allowed${why ? ` (${why})` : ''}`);
    this.name = 'IllegalTransition';
    this.source = source;
    this.target = target;
  }
}

/** The current state and the table that says where it may go next. */
export class Lifecycle {
  constructor(initial, table) {
    this.state = initial;
    this.table = table;
  }

  /** Move to `target` (IllegalTransition if the table does not allow it); returns the state left. */
  to(target, why = '') {
    const source = this.state;
    if (!this.table[source].includes(target)) throw new IllegalTransition(source, target, why);
    this.state = target;
    return source;
  }
}
