"""Page mapping and calibration, InkML replay, the settings' checks, and the errors a tutor
sees (each with its fix): no microphone, an expired token, an unreachable server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pen_gateway.audio import open_source
from pen_gateway.device import DeviceInfo, Phase, Sample, TiltKind
from pen_gateway.errors import GatewayError, MicrophoneError, ServerError
from pen_gateway.gateway import Gateway
from pen_gateway.pages import PAGE_HEIGHT, PAGE_WIDTH, Calibration, PageMap
from pen_gateway.replay import inkml_timeline
from pen_gateway.settings import GatewaySettings
from pen_gateway.spool import Spool
from sessionserver.auth import TokenSigner
from tests.conftest import SECRET, RunningServer
from wire import Role

PAD = DeviceInfo("pad", 0, 32767, 0, 32767, 235.0, 323.0, 1023, TiltKind.NONE)  # the UC-Logic's axes


def test_aspect_is_kept_in_millimetres() -> None:
    pm = PageMap(PAD)
    # 32767 units are 139.4 mm across and 101.4 mm down: the width fills the page
    assert pm.xy(32767, 0) == (PAGE_WIDTH, 0)
    x, y = pm.xy(32767, 32767)
    assert x == PAGE_WIDTH and y == round(32767 / 323 * PAGE_WIDTH / (32767 / 235))
    # a 10 mm square on the pad is a square on the page
    a, b = pm.xy(0, 0), pm.xy(2350, 3230)
    assert abs((b[0] - a[0]) - (b[1] - a[1])) <= 1


def test_calibration_maps_part_of_the_pad_and_clamps() -> None:
    pm = PageMap(PAD, Calibration.parse("0.5,0,1,1"))
    # the pad's right half (69.7 x 101.4 mm) meets the page's height first: it spans the height
    assert pm.xy(16384, 0)[0] == 0 and pm.xy(32767, 32767)[1] == PAGE_HEIGHT
    assert pm.xy(32767, 0)[0] == round(16383 / 235 * PAGE_HEIGHT / (32767 / 323)) < PAGE_WIDTH
    assert pm.xy(0, 0) == (0, 0)  # left of the calibrated part: clamped to the edge
    assert pm.xy(10**9, 10**9) == (PAGE_WIDTH, PAGE_HEIGHT)
    assert pm.pressure(1023) == 4095 and pm.pressure(0) == 0 and pm.pressure(10**6) == 4095
    with pytest.raises(ValueError, match="left < right"):
        Calibration.parse("0.6,0,0.5,1")
    assert pm.next_page() == 1


def test_inkml_replay() -> None:
    text = """<ink xmlns="http://www.w3.org/2003/InkML"><traceFormat><channel name="X"/><channel name="Y"/>
    <channel name="T"/><channel name="F"/></traceFormat>
    <trace>10 20 0 300, 12 22 8 320, 14 25 16 310</trace><trace>50 60 0 200, 52 61 8 210</trace></ink>"""
    info, timeline = inkml_timeline(text)
    samples = [e for e in timeline if isinstance(e, Sample)]
    assert [s.phase for s in samples] == [Phase.DOWN, Phase.MOVE, Phase.MOVE, Phase.UP, Phase.DOWN, Phase.MOVE,
                                          Phase.UP]
    assert [(s.x, s.y, s.pressure) for s in samples[:3]] == [(10, 20, 300), (12, 22, 320), (14, 25, 310)]
    assert samples[1].host_s - samples[0].host_s == pytest.approx(0.008)
    assert info.pressure_max == 320 and [s.seq for s in samples] == list(range(7))


def test_no_microphone_says_what_to_do() -> None:
    with pytest.raises(MicrophoneError) as err:
        open_source(None)
    assert "--audio FILE.wav" in err.value.fix and "--audio none" in err.value.fix
    assert open_source("none") is None
    with pytest.raises(MicrophoneError, match="cannot read the WAV file"):
        open_source("/nonexistent.wav")


def test_settings_are_checked_by_name() -> None:
    with pytest.raises(GatewayError) as err:
        GatewaySettings.from_env({"PEN_GATEWAY_SPOOL_MAX_BYTES": "0"})
    assert str(err.value) == "PEN_GATEWAY_SPOOL_MAX_BYTES must be positive, not 0. Fix: unset it to take the default"
    with pytest.raises(GatewayError, match="PEN_GATEWAY_FSYNC_MS='soon' is not a float"):
        GatewaySettings.from_env({"PEN_GATEWAY_FSYNC_MS": "soon"})
    assert GatewaySettings.from_env({"PEN_GATEWAY_LATE_AUDIO_S": "5"}).late_audio_s == 5.0


async def test_an_expired_token_is_final_with_its_fix(server: RunningServer, tmp_path: Path) -> None:
    token = TokenSigner(SECRET).mint("pen-exp", "li.jun", Role.TUTOR, int(time.time()) - 10)
    gw = Gateway(server.url("pen-exp"), token, adapter=None, audio=None, spool=Spool(tmp_path / "s"))
    with pytest.raises(ServerError) as err:
        await asyncio.wait_for(gw.run(), 10)
    assert "2002 join token has expired" in str(err.value) and "Use my writing pad" in err.value.fix


async def test_an_unreachable_server_is_retried_and_said(tmp_path: Path) -> None:
    gw = Gateway("ws://127.0.0.1:9/ws/session/x", "t", adapter=None, audio=None, spool=Spool(tmp_path / "s"))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    while not any("unreachable" in m for m in gw.messages):  # noqa: ASYNC110 - no event for a failed connect
        await asyncio.sleep(0.01)
    assert gw.status().state in ("backoff", "connecting")
    stop.set()
    await asyncio.wait_for(task, 10)
