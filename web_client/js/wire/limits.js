// Limits as the browser client sees them (wire/limits.py holds the server's, with defaults).

/**
 * What the decoder checks in frames from the server (as `_CLIENT_LIMITS` of the Python client):
 * frames from the server are not bounded, snapshot strokes may be long.
 */
export const CLIENT_LIMITS = Object.freeze({
  maxPointsPerMessage: 2 ** 31,
  maxPointsPerStroke: 2 ** 31,
  maxStringBytes: 1 << 16,
  maxTokenBytes: 4096,
  maxSdpBytes: 1 << 20,
  maxCoordinate: 65_535,
});

/** Cleared layers a page keeps for Restore (wire/limits.py CLEAR_LAYERS_KEPT): every side keeps as many. */
export const CLEAR_LAYERS_KEPT = 8;

/** The server's default limits a client stays under when it sends (docs/protocol.md section 8). */
export const SEND_LIMITS = Object.freeze({
  maxPointsPerMessage: 512,
  maxCoordinate: 65_535,
});
