"""Ogg Opus per speaker (RFC 7845 over RFC 3533), written from already-encoded packets.

Mono, 48 kHz. A packet's granule position is where its decoded samples end, counted from the
start of the stream, which is session clock 0; with the pre-skip ``p`` (312 samples, libopus's
encoder lookahead, which every live encoder we forward from adds in front of its audio, less the
first packet's place within a 2.5 ms step: 192..312), a decoded sample at granule position ``g``
was captured at session sample ``g - p``: players show session time.
Three layers:

- ``OggOpusTimeline`` (sans-I/O) places each packet at its session sample: which silence
  packets (20 ms down to 2.5 ms) fill the gap before it, and the stream's pre-skip;
- ``OggPager`` (sans-I/O) turns packets with granule positions into Ogg pages;
- ``OggOpusWriter`` is the file shell over both; ``read_ogg_opus`` / ``repair_ogg`` read and
  close out a file a crash left open.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from recordings import RecordingError
from recordings.eventlog import cut_tail, fsync_dir
from wire.errors import ProtocolError
from wire.opus import packet_samples

RATE = 48000
SAMPLES_PER_MS = RATE // 1000
SILENCE_20MS = b"\xf8\xff\xfe"  # CELT FB 20 ms, one frame; decodes to 960 zero samples (tested with opuslib)
SILENCE_SAMPLES = 960
MIN_FRAME = 120  # 2.5 ms, Opus's shortest frame: the step of silence fill
# CELT FB silence frames of 20, 10, 5 and 2.5 ms (TOC configs 31..28), each decoding to zeros (tested)
SILENCE_PACKETS = tuple((bytes([toc]) + b"\xff\xfe", n)
                        for toc, n in ((0xF8, 960), (0xF0, 480), (0xE8, 240), (0xE0, 120)))
SLACK_MS = 10  # a packet within this of the stream's end stays contiguous (no fill, no drop)
SLACK_SAMPLES = SLACK_MS * SAMPLES_PER_MS
ARRIVAL_SLACK_MS = 60  # for packets placed by arrival time: network jitter up to this stays contiguous
ARRIVAL_SLACK_SAMPLES = ARRIVAL_SLACK_MS * SAMPLES_PER_MS
MAX_PAGE_MS = 1000  # a page is cut once it holds this much audio (RFC 7845 suggests <= 1 s pages)
MAX_PAGE_SEGMENTS = 255
# RFC 7845 5.1: pre-skip is the encoder's delay. libopus adds 312 samples (6.5 ms) at 48 kHz in every
# application but restricted-lowdelay; skipping them puts each speaker's audio where it was captured.
# opusinfo also warns about any pre-skip below 120.
PRE_SKIP = 312
NO_PACKET_ENDS = -1  # RFC 3533: the granule position of a page on which no packet ends
VENDOR = "tutorwire"

_PAGE_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, segments
_CONTINUED, _BOS, _EOS = 0x01, 0x02, 0x04
_REVERSED_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


class OggError(RecordingError):
    """A packet that is not Opus, disagrees with its stated sample count, or comes after close."""


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04c11db7, initial 0, unreflected, no final xor).

    Computed with zlib's reflected CRC-32 over bit-reversed bytes (starting its register at 0 and
    undoing its final xor), then bit-reversing the result: C speed without a table loop."""
    register = zlib.crc32(data.translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{register:032b}"[::-1], 2)


def opus_samples(payload: bytes) -> int | None:
    """48 kHz samples in an Opus packet, or None when ``payload`` is not a well-formed one."""
    try:
        return packet_samples(payload)
    except ProtocolError:
        return None


def opus_head(pre_skip: int = PRE_SKIP, channels: int = 1) -> bytes:
    """The OpusHead packet: version 1, input rate 48000, gain 0, channel mapping family 0."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, RATE, 0, 0)


def opus_tags(vendor: str = VENDOR) -> bytes:
    raw = vendor.encode()
    return b"OpusTags" + struct.pack("<I", len(raw)) + raw + struct.pack("<I", 0)


def build_page(serial: int, seq: int, granule: int, packets: list[bytes], *, flags: int = 0) -> bytes:
    """One Ogg page holding whole ``packets`` (at most 255 lacing values in all)."""
    lacing = bytearray()
    for packet in packets:
        full, rest = divmod(len(packet), 255)
        lacing += b"\xff" * full + bytes([rest])
    if len(lacing) > MAX_PAGE_SEGMENTS:
        raise OggError(f"{len(lacing)} lacing values do not fit one page")
    header = _PAGE_HEADER.pack(b"OggS", 0, flags, granule, serial, seq, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(packets))
    struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return bytes(page)


def _segments(packet: bytes) -> int:
    return len(packet) // 255 + 1


class OggOpusTimeline:
    """Places packets on the session timeline, sample-exact (sans-I/O).

    ``add`` takes the session sample (48 kHz since session clock 0) at which a packet's audio was
    captured. The first packet fixes the stream's pre-skip: silence in 2.5 ms steps up to the
    last whole step before it, and a pre-skip of ``PRE_SKIP`` minus the rest (192..312 samples),
    so that its first captured sample plays at exactly its session sample, whenever it comes,
    the first milliseconds included. ``end`` is the session sample where the stream's audio ends
    so far. A later packet within ``slack`` samples of ``end`` follows contiguously (a few
    milliseconds of clock estimate or timestamp rounding never cut audio); one further on is
    preceded by silence of the gap's length (to the nearest 2.5 ms, the smallest Opus frame);
    one that would overlap the stream by more than ``slack`` is dropped (``dropped`` counts
    them): audio already written is never moved, and what follows stays in sync."""

    def __init__(self, *, slack_samples: int = SLACK_SAMPLES) -> None:
        self.slack = slack_samples
        self.granule = 0
        self.pre_skip: int | None = None  # fixed by the first packet
        self.dropped = 0

    @property
    def end(self) -> int:
        """The session sample where the stream ends (the next contiguous packet's capture start)."""
        return self.granule + PRE_SKIP - (PRE_SKIP if self.pre_skip is None else self.pre_skip)

    def add(self, payload: bytes, samples: int, at_sample: int, *, arrival: bool = False) -> list[tuple[bytes, int]]:
        """The packets to write for this one (silence fill first), each with its granule end;
        empty when it is dropped. ``OggError`` when ``payload`` is not Opus or does not hold
        ``samples`` samples. A negative ``at_sample`` is taken as 0. With ``arrival`` the place
        is an arrival time (no capture time, as from WebRTC): network jitter up to
        ``ARRIVAL_SLACK_MS`` stays contiguous and an early packet (a burst) is appended, never
        dropped."""
        actual = opus_samples(payload)
        if actual is None:
            raise OggError("payload is not a well-formed Opus packet")
        if actual != samples:
            raise OggError(f"packet holds {actual} samples, not {samples}")
        at_sample = max(0, at_sample)
        out: list[tuple[bytes, int]] = []
        if self.pre_skip is None:
            rest = at_sample % MIN_FRAME
            self.pre_skip = PRE_SKIP - rest
            out += self._silence(at_sample - rest)
        else:
            gap = at_sample - self.end
            slack = max(self.slack, ARRIVAL_SLACK_SAMPLES) if arrival else self.slack
            if gap < -slack and not arrival:
                self.dropped += 1
                return []
            if gap > slack:
                out += self._silence((gap + MIN_FRAME // 2) // MIN_FRAME * MIN_FRAME)
        self.granule += samples
        out.append((payload, self.granule))
        return out

    def _silence(self, samples: int) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        for packet, size in SILENCE_PACKETS:
            while samples >= size:
                samples -= size
                self.granule += size
                out.append((packet, self.granule))
        return out


class OggPager:
    """Turns Opus packets with granule end positions into Ogg pages (sans-I/O).

    ``headers()`` gives the OpusHead and OpusTags pages; ``add`` returns the pages it completed
    (a page is cut at 255 lacing values or ``max_page_ms`` of audio); ``flush`` pages everything
    pending; ``finish`` does too, marking the last page EOS. With nothing pending that EOS page is
    empty (granule -1, as RFC 3533 wants for a page where no packet ends); a stream with no audio
    at all gets one 20 ms silence packet on it, since players refuse an Opus stream without audio."""

    def __init__(self, serial: int, *, max_page_ms: int = MAX_PAGE_MS) -> None:
        self.serial = serial
        self.max_page_samples = max_page_ms * SAMPLES_PER_MS
        self.granule = 0  # end of the last packet added
        self._paged_granule = 0  # end of the last packet already on a page
        self._seq = 0
        self._pending: list[bytes] = []
        self._pending_segments = 0
        self.finished = False

    def headers(self, pre_skip: int = PRE_SKIP) -> bytes:
        head = build_page(self.serial, 0, 0, [opus_head(pre_skip)], flags=_BOS)
        tags = build_page(self.serial, 1, 0, [opus_tags()])
        self._seq = 2
        return head + tags

    def _page(self, flags: int = 0) -> bytes:
        page = build_page(self.serial, self._seq, self.granule, self._pending, flags=flags)
        self._seq += 1
        self._pending = []
        self._pending_segments = 0
        self._paged_granule = self.granule
        return page

    def add(self, payload: bytes, granule_end: int) -> bytes:
        if self.finished:
            raise OggError("packet after the EOS page")
        if _segments(payload) > MAX_PAGE_SEGMENTS:
            raise OggError(f"packet of {len(payload)} bytes does not fit one Ogg page")
        out = b""
        if self._pending_segments + _segments(payload) > MAX_PAGE_SEGMENTS:
            out += self._page()
        self._pending.append(payload)
        self._pending_segments += _segments(payload)
        self.granule = granule_end
        if self.granule - self._paged_granule >= self.max_page_samples:
            out += self._page()
        return out

    def flush(self) -> bytes:
        return self._page() if self._pending else b""

    def finish(self) -> bytes:
        if self.finished:
            return b""
        self.finished = True
        if not self._pending and self.granule == 0:
            self._pending = [SILENCE_20MS]
            self.granule = SILENCE_SAMPLES
        if not self._pending:
            page = build_page(self.serial, self._seq, NO_PACKET_ENDS, [], flags=_EOS)
            self._seq += 1
            return page
        return self._page(flags=_EOS)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class OggOpusWriter:
    """One speaker's ``audio-*.opus``: creates the file (refusing one that exists), writes the
    header pages with the first packet (its place fixes the pre-skip), and pages of audio as they
    fill (so at most ``max_page_ms`` of audio is ever only in memory). ``flush`` pages everything
    buffered; ``close`` writes the EOS page."""

    def __init__(self, path: Path, serial: int, *, max_page_ms: int = MAX_PAGE_MS,
                 slack_samples: int = SLACK_SAMPLES) -> None:
        self.path = path
        self._timeline = OggOpusTimeline(slack_samples=slack_samples)
        self._pager = OggPager(serial, max_page_ms=max_page_ms)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._closed = False
        self._headers = False

    @classmethod
    def continuing(cls, path: Path, read: OggRead, *, max_page_ms: int = MAX_PAGE_MS,
                   slack_samples: int = SLACK_SAMPLES) -> OggOpusWriter:
        """A writer that goes on with the stream in ``path`` as ``reopen_ogg`` left it (``read``):
        the same serial, the next page number, the same pre-skip, packets placed after the
        stream's end on the same timeline (a gap filled with silence as always)."""
        if read.serial is None or not read.headers_ok or read.eos:
            raise OggError(f"{path.name} is not a stream that can go on")
        writer = cls.__new__(cls)
        writer.path = path
        writer._timeline = OggOpusTimeline(slack_samples=slack_samples)
        writer._timeline.granule = read.granule
        writer._timeline.pre_skip = read.pre_skip
        writer._pager = OggPager(read.serial, max_page_ms=max_page_ms)
        writer._pager.granule = writer._pager._paged_granule = read.granule
        writer._pager._seq = read.last_seq + 1
        writer._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        writer._closed = False
        writer._headers = True
        return writer

    @property
    def granule(self) -> int:
        """End of the stream so far, in 48 kHz samples of the stream (pre-skip included)."""
        return self._timeline.granule

    @property
    def end(self) -> int:
        """The session sample where the stream's audio ends so far."""
        return self._timeline.end

    @property
    def dropped(self) -> int:
        """Packets dropped because they would have overlapped the stream (see ``OggOpusTimeline``)."""
        return self._timeline.dropped

    def _head(self) -> bytes:
        if self._headers:
            return b""
        self._headers = True
        return self._pager.headers(self._timeline.pre_skip or PRE_SKIP)

    def add(self, payload: bytes, samples: int, at_sample: int, *, arrival: bool = False) -> int:
        """Add a packet captured at session sample ``at_sample`` (or, with ``arrival``, that
        arrived then: see ``OggOpusTimeline.add``); returns the stream's granule end."""
        if self._closed:
            raise OggError("add after close")
        placed = self._timeline.add(payload, samples, at_sample, arrival=arrival)
        out = bytearray(self._head())
        for packet, granule in placed:
            out += self._pager.add(packet, granule)
        if out:
            _write_all(self._fd, bytes(out))
        return self._timeline.granule

    def fileno(self) -> int:
        """The file's descriptor, for an fsync off the event loop."""
        return self._fd

    def flush(self, fsync: bool) -> None:
        if self._closed:
            raise OggError("flush after close")
        _write_all(self._fd, self._head() + self._pager.flush())
        if fsync:
            os.fsync(self._fd)

    def close(self, fsync: bool = True) -> None:
        """Write the EOS page and close; closing twice is harmless."""
        if self._closed:
            return
        try:
            _write_all(self._fd, self._head() + self._pager.finish())
            if fsync:
                os.fsync(self._fd)
        finally:
            self._closed = True
            os.close(self._fd)

    def abandon(self) -> None:
        """Close the file as it is: no pending page, no EOS (after a failure; recovery follows)."""
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> OggOpusWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class OggRead:
    """What ``read_ogg_opus`` found. ``packets`` are the audio packets with their granule ends;
    ``good_bytes`` ends the last good page that leaves no packet half-read; ``damage`` is None or
    a sentence naming the byte offset and the reason. ``serial``, ``granule`` (of the last good
    page with a packet) and ``last_seq`` are what ``repair_ogg`` needs to append an EOS page;
    ``headers_ok`` says whether OpusHead and OpusTags were read whole."""

    packets: list[tuple[bytes, int]] = field(default_factory=list)
    pre_skip: int = 0
    channels: int = 0
    eos: bool = False
    good_bytes: int = 0
    damage: str | None = None
    serial: int | None = None
    granule: int = 0
    last_seq: int = -1
    headers_ok: bool = False
    last_page_at: int = -1  # where the last page within good_bytes begins (-1: none)


class _OggParser:
    """State for ``read_ogg_opus``; each ``_page`` returns None or why it stopped."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = OggRead()
        self.headers_seen = 0  # OpusHead, then OpusTags
        self.partial = bytearray()
        self.in_packet = False

    def page(self, offset: int) -> tuple[int, str | None]:
        """Parse the page at ``offset``: (its end, None) or (offset, why it is bad)."""
        data, read = self.data, self.read
        if len(data) - offset < _PAGE_HEADER.size:
            return offset, f"torn page at byte {offset}: {len(data) - offset} bytes of a 27-byte header"
        capture, version, flags, granule, serial, seq, crc, nseg = _PAGE_HEADER.unpack_from(data, offset)
        if capture != b"OggS" or version != 0:
            return offset, f"no Ogg page at byte {offset}"
        body_at = offset + _PAGE_HEADER.size + nseg
        lacing = data[offset + _PAGE_HEADER.size : body_at]
        if len(lacing) < nseg:
            return offset, f"torn page at byte {offset}: its segment table is cut short"
        end = body_at + sum(lacing)
        if end > len(data):
            return offset, f"torn page at byte {offset}: {len(data) - offset} of {end - offset} bytes"
        page = bytearray(data[offset:end])
        page[22:26] = b"\0\0\0\0"
        if ogg_crc(bytes(page)) != crc:
            return offset, f"CRC mismatch in page at byte {offset}"
        if read.serial is None:
            if not flags & _BOS:
                return offset, f"first page at byte {offset} is not a beginning-of-stream page"
            read.serial = serial
        elif serial != read.serial:
            return offset, f"page at byte {offset} has serial {serial}, not {read.serial}"
        elif flags & _BOS:
            return offset, f"second beginning-of-stream page at byte {offset}"
        if seq != read.last_seq + 1:
            return offset, f"page at byte {offset} has sequence number {seq}, expected {read.last_seq + 1}"
        if read.eos:
            return offset, f"page at byte {offset} follows the end-of-stream page"
        if bool(flags & _CONTINUED) != self.in_packet:
            return offset, f"page at byte {offset} breaks packet continuation"
        problem = self._packets(offset, lacing, data[body_at:end], granule)
        if problem:
            return offset, problem
        if flags & _EOS and self.in_packet:
            return offset, f"end-of-stream page at byte {offset} ends inside a packet"
        read.last_seq = seq
        read.eos = bool(flags & _EOS)
        return end, None

    def _packets(self, offset: int, lacing: bytes, body: bytes, granule: int) -> str | None:
        completed: list[bytes] = []
        at = 0
        for value in lacing:
            self.partial += body[at : at + value]
            at += value
            self.in_packet = value == 255
            if not self.in_packet:
                completed.append(bytes(self.partial))
                self.partial.clear()
        audio: list[bytes] = []
        for packet in completed:
            if self.headers_seen == 0:
                if len(packet) < 19 or packet[:8] != b"OpusHead" or packet[8] >> 4 != 0:
                    return f"page at byte {offset} does not start with a valid OpusHead"
                self.read.channels, self.read.pre_skip = packet[9], int.from_bytes(packet[10:12], "little")
                self.headers_seen = 1
            elif self.headers_seen == 1:
                if packet[:8] != b"OpusTags":
                    return f"page at byte {offset} does not hold OpusTags"
                self.headers_seen = 2
            else:
                audio.append(packet)
        if self.headers_seen < 2 and granule not in (0, -1):
            return f"header page at byte {offset} has granule position {granule}"
        if audio:
            return self._place(offset, audio, granule)
        return None

    def _place(self, offset: int, audio: list[bytes], granule: int) -> str | None:
        ends: list[int] = []
        position = granule
        for packet in reversed(audio):
            samples = opus_samples(packet)
            if samples is None:
                return f"page at byte {offset} holds a packet that is not Opus"
            ends.append(position)
            position -= samples
        if position < self.read.granule:
            return f"page at byte {offset} has granule position {granule}, before the previous page's end"
        self.read.packets.extend(zip(audio, reversed(ends), strict=True))
        self.read.granule = granule
        return None


def read_ogg_opus(data: bytes) -> OggRead:
    """The audio packets of a single-stream Ogg Opus file up to its first damage. Never raises."""
    parser = _OggParser(data)
    read = parser.read
    offset = 0
    boundary = (-1, 0, 0)  # last_seq, granule, packet count where good_bytes ends
    while offset < len(data):
        end, problem = parser.page(offset)
        if problem:
            read.damage = problem
            break
        if not parser.in_packet:
            read.good_bytes = end
            read.headers_ok = parser.headers_seen == 2
            read.last_page_at = offset
            boundary = (read.last_seq, read.granule, len(read.packets))
        offset = end
    else:
        if not data:
            read.damage = "empty file at byte 0: no OpusHead page"
        elif parser.in_packet:
            read.damage = f"file ends at byte {len(data)} inside a packet continued over pages"
        elif not read.headers_ok:
            read.damage = f"file ends at byte {len(data)} before the OpusTags page"
    # A packet left half-read past good_bytes does not count: report the stream as cut there.
    read.last_seq, read.granule = boundary[0], boundary[1]
    del read.packets[boundary[2] :]
    return read


def repair_ogg(path: Path, *, fallback_serial: int | None = None) -> OggRead:
    """Recovery: cut a torn or damaged tail (kept as ``<name>.damaged``), then append an empty EOS
    page (granule -1) if the stream has none, so players accept the file; a stream without audio
    gets one 20 ms silence packet on its EOS page. A file whose headers are lost is
    rewritten as an empty stream (serial from its first page if readable, else ``fallback_serial``
    or a hash of the file name). Returns what ``read_ogg_opus`` found before the repair; calling
    it again finds nothing to do."""
    read = read_ogg_opus(path.read_bytes())
    if not read.headers_ok:
        cut_tail(path, 0)
        serial = read.serial if read.serial is not None else fallback_serial
        pager = OggPager(serial if serial is not None else zlib.crc32(path.name.encode()))
        _append(path, pager.headers() + pager.finish())
        return read
    if read.good_bytes < path.stat().st_size:
        cut_tail(path, read.good_bytes)
    if not read.eos:
        assert read.serial is not None  # headers_ok implies a first page was read
        if read.packets:
            eos_page = build_page(read.serial, read.last_seq + 1, NO_PACKET_ENDS, [], flags=_EOS)
        else:
            eos_page = build_page(read.serial, read.last_seq + 1, SILENCE_SAMPLES, [SILENCE_20MS], flags=_EOS)
        _append(path, eos_page)
    return read


def reopen_ogg(path: Path) -> OggRead | None:
    """Make ``path`` ready to go on (a recording resumed on another node): cut a torn or damaged
    tail (kept as ``<name>.damaged``) and take back its end of stream, if it has one, so that
    packets can follow on the same stream (``OggOpusWriter.continuing``): an empty EOS page is
    cut off, an EOS page holding packets loses its EOS flag (its packets stay where they are).
    Returns what the stream holds then; None when its headers are lost (the file is removed,
    its bytes kept as ``.damaged``: the speaker's stream starts again in a new file)."""
    read = read_ogg_opus(path.read_bytes())
    if not read.headers_ok or read.last_page_at < 0:
        cut_tail(path, 0)
        path.unlink()
        fsync_dir(path.parent)
        return None
    if read.good_bytes < path.stat().st_size:
        cut_tail(path, read.good_bytes)
    if read.eos:
        with open(path, "r+b") as f:
            f.seek(read.last_page_at)
            page = bytearray(f.read(read.good_bytes - read.last_page_at))
            if page[26] == 0:  # no segments: an empty EOS page (recovery's, or a close with nothing pending)
                f.truncate(read.last_page_at)
                read.last_seq -= 1
                read.good_bytes = read.last_page_at
            else:
                page[5] &= ~_EOS & 0xFF
                page[22:26] = b"\0\0\0\0"
                struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
                f.seek(read.last_page_at)
                f.write(page)
            f.flush()
            os.fsync(f.fileno())
        read.eos = False
    return read


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)
