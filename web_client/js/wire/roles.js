// Who a participant is in a room, and what that lets them do (wire/roles.py).
//
// A join token names the role; the server tells each participant its own Rights in Welcome, so
// that the pages hide what the participant may not do (the server refuses it with 1020 anyway).

export const Role = Object.freeze({ TUTOR: 0, STUDENT: 1, PRESENTER: 2, VIEWER: 3 });
export const MAX_ROLE = 3;

const LABELS = ['tutor', 'student', 'presenter', 'viewer'];

/** The role named `label`, or the role number itself; `RangeError` for anything else. */
export function roleFromLabel(label) {
  if (typeof label === 'number' && LABELS[label] !== undefined) return label;
  const role = LABELS.indexOf(String(label));
  if (role < 0) throw new RangeError(`no role ${JSON.stringify(label)}`);
  return role;
}

/** What a participant may do (Welcome.rights), a bit set. */
export const Rights = Object.freeze({
  NONE: 0,
  INK: 1, // StrokeBegin/Points/End, Undo of one's own strokes
  PAGES: 2, // PageAdd, PageSwitch
  CLEAR: 4, // Clear a page (everyone's strokes on it), Restore what a Clear took
  AUDIO: 8, // publish audio
  UNDO_OTHERS: 16, // Undo another participant's stroke
  ASK: 32, // Hand, Question (a class's viewers)
  MODERATE: 64, // Grant; a class's stage invites and Moderate
});
export const GRANTABLE = Rights.CLEAR | Rights.UNDO_OTHERS; // what a Grant may give
export const STAGE_RIGHTS = Rights.INK | Rights.AUDIO; // a class viewer's while on stage
export const ALL_RIGHTS = Rights.INK | Rights.PAGES | Rights.CLEAR | Rights.AUDIO | Rights.UNDO_OTHERS
  | Rights.ASK | Rights.MODERATE;

/** The right an op needs (the room's check, sessionserver/room/room.py OP_RIGHTS). */
export function rightFor(opType) {
  switch (opType) {
    case 'StrokeBegin': case 'StrokePoints': case 'StrokeEnd': case 'Undo': return Rights.INK;
    case 'PageAdd': case 'PageSwitch': return Rights.PAGES;
    case 'Clear': case 'Restore': return Rights.CLEAR;
    case 'Grant': return Rights.MODERATE;
    case 'Mute': return Rights.AUDIO;
    case 'Hand': case 'Question': return Rights.ASK;
    case 'Stage': return Rights.NONE; // the room decides who may make which move
    case 'Moderate': return Rights.MODERATE;
    default: throw new TypeError(`${opType} is not an op`);
  }
}
