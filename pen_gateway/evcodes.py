"""The few kernel input-event codes a pen needs (``linux/input-event-codes.h``), so the
parser runs without python-evdev (tests, other systems)."""

from __future__ import annotations

EV_SYN, EV_KEY, EV_ABS, EV_MSC = 0x00, 0x01, 0x03, 0x04
SYN_REPORT, SYN_DROPPED = 0x00, 0x03
ABS_X, ABS_Y, ABS_PRESSURE, ABS_DISTANCE, ABS_TILT_X, ABS_TILT_Y = 0x00, 0x01, 0x18, 0x19, 0x1A, 0x1B
BTN_0 = 0x100
BTN_TOOL_PEN, BTN_TOOL_RUBBER = 0x140, 0x141
BTN_TOUCH, BTN_STYLUS, BTN_STYLUS2 = 0x14A, 0x14B, 0x14C
KEY_PAGEDOWN = 109
TOOL_KEYS = frozenset({BTN_TOOL_PEN, BTN_TOOL_RUBBER})
