"""The pad's area onto the session's pages, sans-I/O.

The session page is A4 portrait in page units, ``PAGE_WIDTH`` x ``PAGE_HEIGHT`` (as the web
client draws it). **Calibration** chooses the part of the pad that maps onto the page, as
fractions of the pad (``Calibration(left, top, right, bottom)``; the default is the whole pad).
That part is scaled by one factor on both axes (the aspect is kept, so a circle stays a circle)
to fit the page's width or height, whichever it meets first, anchored at the page's top-left;
what lies outside the page is clamped to its edge. Pressure is scaled from the device's range to
the wire's 0..4095. Pages: ``next_page()`` (a pad key, a keyboard shortcut) moves on one page.
"""

from __future__ import annotations

from dataclasses import dataclass

from wire.limits import PRESSURE_MAX

from .device import DeviceInfo, Sample

PAGE_WIDTH = 10_000
PAGE_HEIGHT = 14_142


@dataclass(frozen=True, slots=True)
class Calibration:
    left: float = 0.0
    top: float = 0.0
    right: float = 1.0
    bottom: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.left < self.right <= 1.0 and 0.0 <= self.top < self.bottom <= 1.0):
            raise ValueError("calibration: need 0 <= left < right <= 1 and 0 <= top < bottom <= 1")

    @classmethod
    def parse(cls, text: str) -> Calibration:
        """``"left,top,right,bottom"`` as fractions of the pad, e.g. ``0,0,0.5,1`` for its left half."""
        parts = [float(p) for p in text.split(",")]
        if len(parts) != 4:
            raise ValueError("calibration: give four fractions: left,top,right,bottom")
        return cls(*parts)


class PageMap:
    def __init__(self, info: DeviceInfo, calibration: Calibration | None = None, *, page: int = 0,
                 page_width: int = PAGE_WIDTH, page_height: int = PAGE_HEIGHT) -> None:
        cal = calibration or Calibration()
        self.info = info
        w, h = info.x_max - info.x_min, info.y_max - info.y_min
        self.x0 = info.x_min + cal.left * w
        self.y0 = info.y_min + cal.top * h
        area_w, area_h = (cal.right - cal.left) * w, (cal.bottom - cal.top) * h
        # units per mm may differ between the axes (the UC-Logic pad: 235 and 323): keep the aspect in mm
        ux = info.units_per_mm_x or 1.0
        uy = (info.units_per_mm_y or 1.0) if info.units_per_mm_x else 1.0
        self.scale = min(page_width / (area_w / ux), page_height / (area_h / uy))
        self.sx, self.sy = self.scale / ux, self.scale / uy
        self.page_width, self.page_height = page_width, page_height
        self.page = page
        self.pressure_scale = PRESSURE_MAX / info.pressure_max if info.pressure_max > 0 else 0.0

    def xy(self, x: int, y: int) -> tuple[int, int]:
        px = round((x - self.x0) * self.sx)
        py = round((y - self.y0) * self.sy)
        return min(max(px, 0), self.page_width), min(max(py, 0), self.page_height)

    def pressure(self, raw: int) -> int:
        if self.pressure_scale == 0.0:
            return PRESSURE_MAX // 2 if raw else 0
        return min(PRESSURE_MAX, max(0, round(raw * self.pressure_scale)))

    def map(self, sample: Sample) -> tuple[int, int, int]:
        x, y = self.xy(sample.x, sample.y)
        return x, y, self.pressure(sample.pressure)

    def next_page(self) -> int:
        self.page += 1
        return self.page
