"""Voice on any network (issue 22, items 6 and 10): with UDP blocked in the browser tests'
network namespace (nft, as a school firewall would) and no TURN server, WebRTC cannot connect;
both browsers fall back to Opus over the session WebSocket (WebCodecs), and each hears the
other: the receiver's decoded level is not silent. The badge says "voice via relay" and nothing
more technical. With UDP open again the voice goes back to WebRTC."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from playwright.async_api import expect

from . import kit
from .conftest import DESKTOP, PHONE, TUTOR_ID, OpenParty, Shot

pytestmark = pytest.mark.timeout(120)

AUDIBLE_LEVEL = 0.001  # the analyser's RMS, 0..1; decoded digital silence is 0
TABLE = "tutorwire_test_udp"


def nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, capture_output=True, text=True, timeout=10)


class UdpBlock:
    """Every UDP datagram in this network namespace is dropped until ``lift()``."""

    def __init__(self) -> None:
        nft("add", "table", "inet", TABLE)
        self.on = True
        nft("add", "chain", "inet", TABLE, "out", "{ type filter hook output priority 0 ; policy accept ; }")
        nft("add", "rule", "inet", TABLE, "out", "meta", "l4proto", "udp", "drop")

    def lift(self) -> None:
        if self.on:
            self.on = False
            subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, timeout=10)


@pytest.fixture
def udp_blocked() -> Iterator[UdpBlock]:
    if shutil.which("nft") is None:
        pytest.skip("nft (nftables) is not installed: scripts/setup-env test installs it")
    block = UdpBlock()
    try:
        yield block
    finally:
        block.lift()


async def test_voice_flows_both_ways_over_the_websocket_when_udp_is_blocked(
        open_party: OpenParty, screenshot: Shot, udp_blocked: UdpBlock) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await kit.start_session(tutor, student)
    for party in (tutor, student):
        await expect(party.page.locator("#conn")).to_have_attribute("data-path", "relay", timeout=15_000)
    # each side's decoder hears the other's microphone (Chromium's fake device: a beep)
    for listener, speaker in ((tutor, student), (student, tutor)):
        stats = await kit.eventually(functools.partial(kit.audio_stats, listener.page),
                                     lambda s: s["relay"] is not None and s["relay"]["packetsReceived"] > 50
                                     and s["audioLevel"] > AUDIBLE_LEVEL, 15,
                                     f"the {speaker.role}'s voice decoded at the {listener.role}")
        print(f"{listener.role} hears the {speaker.role} via relay: {stats['relay']}, level {stats['audioLevel']:.4f}")
        assert stats["relay"]["packetsSent"] > 20, f"the {listener.role} sent no voice over the WebSocket"
        assert stats["bytesReceived"] == 0, "no WebRTC media could have arrived with UDP blocked"
    # the user is told the path only as words in the badge
    await expect(tutor.page.locator("#conn")).to_contain_text("voice via relay")
    await expect(student.page.locator("#conn")).to_contain_text("语音经服务器转发")
    text = await tutor.page.locator("#conn").inner_text()
    assert "ms" not in text and "毫秒" not in text, text
    await screenshot(tutor.page, "voice-relay-tutor-desktop")
    await tutor.page.click("#conn")
    await expect(tutor.page.locator("#conn-details")).to_be_visible()
    await expect(tutor.page.locator("#conn-details")).to_contain_text("via relay")
    await screenshot(tutor.page, "voice-relay-details-tutor-desktop")


async def test_the_voice_goes_back_to_webrtc_when_udp_opens(open_party: OpenParty, udp_blocked: UdpBlock) -> None:
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", DESKTOP)
    await kit.start_session(tutor, student)
    for party in (tutor, student):
        await expect(party.page.locator("#conn")).to_have_attribute("data-path", "relay", timeout=15_000)
    udp_blocked.lift()
    # the network changed (as a browser's 'online' event says): each side tries WebRTC again
    for party in (tutor, student):
        await party.page.evaluate("() => window.dispatchEvent(new Event('online'))")
    for party in (tutor, student):
        await expect(party.page.locator("#conn")).to_have_attribute("data-path", "webrtc", timeout=20_000)
    for listener in (tutor, student):
        await kit.eventually(functools.partial(kit.audio_stats, listener.page),
                             lambda s: s["bytesReceived"] > 2000 and s["audioLevel"] > AUDIBLE_LEVEL, 15,
                             f"WebRTC voice at the {listener.role} again")
    await expect(tutor.page.locator("#conn")).not_to_contain_text("relay")


# In this page no ICE candidate crosses either way (its trickle is never heard, the answer's
# candidates are dropped): its WebRTC cannot connect, as behind a firewall that blocks its UDP,
# while the other browser's works. Only this page's WebRTC is touched.
NO_ICE_JS = """
(() => {
  const P = RTCPeerConnection.prototype;
  Object.defineProperty(P, 'onicecandidate', { configurable: true, get() { return null; }, set(_) {} });
  P.addIceCandidate = function () { return Promise.resolve(); };
  const setRemote = P.setRemoteDescription;
  P.setRemoteDescription = function (d) {
    const sdp = d.sdp.split('\\r\\n').filter((l) => !l.startsWith('a=candidate')).join('\\r\\n');
    return setRemote.call(this, { type: d.type, sdp });
  };
})();
"""


async def test_a_relayed_student_and_a_webrtc_tutor_hear_each_other(open_party: OpenParty) -> None:
    """Only the student's network blocks its WebRTC; the tutor at home has it. The server bridges
    the two paths: the student's Audio frames reach the tutor's leg, the tutor's leg's packets
    reach the student's WebSocket."""
    tutor = await open_party("tutor", TUTOR_ID, DESKTOP)
    student = await open_party("student", "bt.student", PHONE)
    await student.context.add_init_script(NO_ICE_JS)
    await kit.start_session(tutor, student)
    await expect(student.page.locator("#conn")).to_have_attribute("data-path", "relay", timeout=15_000)
    await expect(tutor.page.locator("#conn")).to_have_attribute("data-path", "webrtc", timeout=15_000)
    heard = await kit.eventually(functools.partial(kit.audio_stats, student.page),
                                 lambda s: s["relay"] is not None and s["relay"]["packetsReceived"] > 50
                                 and s["audioLevel"] > AUDIBLE_LEVEL, 15, "the tutor's WebRTC voice at the student")
    spoke = await kit.eventually(functools.partial(kit.audio_stats, tutor.page),
                                 lambda s: s["bytesReceived"] > 2000 and s["audioLevel"] > AUDIBLE_LEVEL, 15,
                                 "the student's relayed voice at the tutor's WebRTC leg")
    print(f"student (relay) hears {heard['relay']}, tutor (WebRTC) got {spoke['bytesReceived']} bytes")
