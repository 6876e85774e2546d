// Just enough of Opus packets (RFC 6716, section 3) to refuse what is not one (wire/opus.py).

import { ErrorCode, ProtocolError } from './errors.js';

export const MAX_PACKET_BYTES = 1275 * 3;
const MAX_SAMPLES = 5760; // 120 ms at 48 kHz, the longest packet allowed
// Samples per frame at 48 kHz for each TOC configuration (0-31).
const FRAME_SAMPLES = [
  ...[480, 960, 1920, 2880], ...[480, 960, 1920, 2880], ...[480, 960, 1920, 2880], // SILK NB, MB, WB
  ...[480, 960], ...[480, 960], // hybrid SWB, FB
  ...[120, 240, 480, 960], ...[120, 240, 480, 960], ...[120, 240, 480, 960], ...[120, 240, 480, 960], // CELT
];

/** 48 kHz samples in an Opus packet; `ProtocolError` (1006) when it is not well formed. */
export function packetSamples(packet) {
  if (packet.length === 0) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus packet cannot be empty');
  if (packet.length > MAX_PACKET_BYTES) {
    throw new ProtocolError(ErrorCode.INVALID_FIELD, `an Opus packet is at most ${MAX_PACKET_BYTES} bytes`);
  }
  const toc = packet[0];
  const code = toc & 3;
  let frames = 1;
  if (code === 1 || code === 2) {
    frames = 2;
    if (packet.length < 2) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus packet of two frames is truncated');
  } else if (code === 3) {
    if (packet.length < 2) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus code 3 packet is missing its frame count');
    frames = packet[1] & 0x3f;
    if (frames === 0) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus code 3 packet must hold at least one frame');
  }
  const samples = frames * FRAME_SAMPLES[toc >> 3];
  if (samples > MAX_SAMPLES) throw new ProtocolError(ErrorCode.INVALID_FIELD, 'an Opus packet may hold at most 120 ms');
  return samples;
}
