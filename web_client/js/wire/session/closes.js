// Which endings are final for a client and which it resumes from (wire/session/closes.py).
//
// A client never gives up on a network failure. It stops only when the server has said that
// trying again cannot help (the token, the role or the version is refused, or another
// connection took the participant) or that the session is over for it.

import { CloseCode, ErrorCode, NORMAL_CLOSE } from '../errors.js';
import { ClientState } from './states.js';

// An Error with one of these codes in place of the Welcome (or just before a close) ends it.
export const FAILED_ERRORS = new Set([ErrorCode.AUTH_FAILED, ErrorCode.TOKEN_EXPIRED, ErrorCode.WRONG_SESSION,
  ErrorCode.WRONG_SEAT, ErrorCode.UNSUPPORTED_VERSION, ErrorCode.REPLACED]);
export const ENDED_ERRORS = new Set([ErrorCode.SESSION_ENDED]);
export const FAILED_CLOSES = new Set([CloseCode.AUTH_FAILED, CloseCode.TOKEN_EXPIRED, CloseCode.FORBIDDEN,
  CloseCode.UNSUPPORTED_VERSION, CloseCode.REPLACED]);
export const ENDED_CLOSES = new Set([NORMAL_CLOSE, CloseCode.SESSION_ENDED]);

/** Where an Error with `code` in place of a Welcome leads: FAILED, CLOSED or BACKOFF. */
export function errorOutcome(code) {
  if (FAILED_ERRORS.has(code)) return ClientState.FAILED;
  if (ENDED_ERRORS.has(code)) return ClientState.CLOSED;
  return ClientState.BACKOFF;
}

/**
 * Where the end of a link with close `code` (null: no close frame, 1006) leads, given the code
 * of the last Error the server sent on it. Every close not named above (1006, 1011 and 1012,
 * 4008, 4010, ...) leads to BACKOFF and a resume.
 */
export function closeOutcome(code, lastError = null) {
  if (lastError !== null && errorOutcome(lastError) !== ClientState.BACKOFF) return errorOutcome(lastError);
  if (FAILED_CLOSES.has(code)) return ClientState.FAILED;
  if (ENDED_CLOSES.has(code)) return ClientState.CLOSED;
  return ClientState.BACKOFF;
}
