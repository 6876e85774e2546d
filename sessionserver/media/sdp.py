"""Checking a client's SDP offer before aiortc sees it.

Call ``filter_offer`` on the offer's text, then ``check_offer`` on what it returns; the leg adds
the filter's ``candidates_dropped`` to its stats between the two, so that candidates left out count
even when the offer is then refused. Both raise only ``RtcError``: BAD_SDP (``bad_sdp``) for text
that is not an offer the leg can carry, TOO_MANY_CANDIDATES when the leg would hold more than
``max_candidates`` distinct remote candidates. A refused offer leaves the leg as it was.

Uses aiortc's SDP parser (``aiortc.sdp``), which raises whatever a bad line makes it raise.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from aiortc.sdp import MediaDescription, SessionDescription

from .rtc_config import RemoteAddressPolicy, RtcConfig, RtcError, RtcErrorCode, parse_candidate

__all__ = ["FilteredOffer", "Offer", "bad_sdp", "check_offer", "filter_offer", "opus_payload_types", "primary_audio"]


def bad_sdp(message: str) -> RtcError:
    """The error for an offer the leg will not carry (BAD_SDP)."""
    return RtcError(RtcErrorCode.BAD_SDP, message)


def primary_audio(description: SessionDescription) -> MediaDescription | None:
    """The audio section whose transport the others bundle onto (the first in the BUNDLE group)."""
    bundle = next((g for g in description.group if g.semantic == "BUNDLE" and g.items), None)
    audio = [m for m in description.media if m.kind == "audio"]
    if bundle is not None:
        for media in audio:
            if media.rtp.muxId == str(bundle.items[0]):
                return media
    return audio[0] if audio else None


def opus_payload_types(description: SessionDescription) -> frozenset[int]:
    """The RTP payload types that carry Opus in ``description`` (the leg's own answer)."""
    return frozenset(
        codec.payloadType
        for media in description.media
        for codec in media.rtp.codecs
        if codec.mimeType.lower() == "audio/opus" and codec.payloadType is not None
    )


@dataclass(frozen=True)
class FilteredOffer:
    """An offer's text with the candidates the leg refuses left out (not yet parsed)."""

    sdp: str
    candidate_keys: frozenset[tuple[str, int]]  # the candidates it keeps
    candidates_dropped: int  # malformed, mDNS or at an address the policy refuses


@dataclass(frozen=True)
class Offer:
    """An offer that passed every check: the text to hand aiortc and what the leg keeps of it."""

    sdp: str
    candidate_keys: frozenset[tuple[str, int]]
    ice_credentials: tuple[str, str]  # username fragment and password of the primary audio section
    mids: tuple[str, ...]  # every m-line's a=mid, in order (trickled candidates name one)


def filter_offer(sdp: object, config: RtcConfig, policy: RemoteAddressPolicy) -> FilteredOffer:
    """Check that ``sdp`` is SDP text within ``max_sdp_bytes`` and leave out the candidates the leg
    would refuse if they were trickled (a dropped candidate is not an error)."""
    if not isinstance(sdp, str):
        raise bad_sdp("the offer must be SDP text")
    if len(sdp.encode("utf-8", "surrogatepass")) > config.max_sdp_bytes:
        raise bad_sdp(f"the offer is longer than {config.max_sdp_bytes} bytes")
    if "\x00" in sdp or not sdp.startswith("v=0"):
        raise bad_sdp("the offer is not SDP")
    lines: list[str] = []
    keys: set[tuple[str, int]] = set()
    dropped = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            try:
                candidate = parse_candidate(line)
            except RtcError:
                dropped += 1
                continue
            if not policy.allows(candidate.address):
                dropped += 1
                continue
            keys.add(candidate.key)
        lines.append(line)
    return FilteredOffer("\r\n".join(lines) + "\r\n", frozenset(keys), dropped)


def check_offer(
    offer: FilteredOffer, config: RtcConfig, *, known_keys: Set[tuple[str, int]], known_mids: tuple[str, ...]
) -> Offer:
    """Parse ``offer`` and check that the leg can carry it: audio only, Opus at 48 kHz in every live
    section, ICE credentials, a DTLS fingerprint and rtcp-mux on every m-line, and, counting what
    the leg already holds (``known_keys``, ``known_mids``), at most ``max_candidates`` candidates
    and ``max_audio_sections`` sections."""
    if len(known_keys | offer.candidate_keys) > config.max_candidates:
        raise RtcError(RtcErrorCode.TOO_MANY_CANDIDATES, f"at most {config.max_candidates} candidates are accepted")
    try:
        description = SessionDescription.parse(offer.sdp)
    except Exception as exc:  # aiortc's parser raises whatever the bad line makes it raise
        raise bad_sdp("the offer does not parse as SDP") from exc
    if any(m.kind != "audio" for m in description.media):
        raise bad_sdp("the offer may only hold audio")
    audio = [m for m in description.media if m.port != 0]
    if not audio:
        raise bad_sdp("the offer holds no audio")
    if len(description.media) > config.max_audio_sections:
        raise bad_sdp(f"the offer may hold at most {config.max_audio_sections} audio sections")
    for media in description.media:
        if not media.rtp.muxId:
            raise bad_sdp("every m-line of the offer needs an a=mid")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise bad_sdp("the offer is missing its ICE credentials")
        if media.dtls is None or not media.dtls.fingerprints:
            raise bad_sdp("the offer is missing its DTLS fingerprint")
        if not media.rtcp_mux:
            raise bad_sdp("the offer must multiplex RTP and RTCP (a=rtcp-mux)")
    for media in audio:
        if not any(c.mimeType.lower() == "audio/opus" and c.clockRate == 48000 for c in media.rtp.codecs):
            raise bad_sdp("every audio section of the offer must offer Opus at 48 kHz")
    mids = tuple(str(m.rtp.muxId) for m in description.media)
    if len(set(known_mids) | set(mids)) > config.max_audio_sections:
        raise bad_sdp(f"a connection may hold at most {config.max_audio_sections} audio sections")
    primary = primary_audio(description)
    assert primary is not None and primary.ice is not None  # every m-line is audio with ICE (above)
    credentials = (str(primary.ice.usernameFragment), str(primary.ice.password))
    return Offer(offer.sdp, offer.candidate_keys, credentials, mids)
