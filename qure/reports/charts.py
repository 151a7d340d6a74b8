"""Charts drawn on the server as inline SVG: a bar chart and a line chart from plain values.

No JavaScript and no style attributes (the CSP's style-src may forbid inline styles one
day; the look is in static/css/reports.css, by class): geometry is SVG attributes. Each
chart is an image to assistive technology (role="img", aria-label, a <title>), each bar or
point carries a <title> that a browser shows on hover, and the page puts a table of the
same numbers beside every chart. Values are scaled between "nice" axis ends (0 included),
so a bar's height is its value's share of the axis: value / top * plot height."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 40  # the margins around the plot
MAX_X_LABELS = 12
MAX_BAR = 64  # px: the widest bar
EDGE = 18  # px: a line's first and last points stand this far inside the plot
Number = int | float | Decimal


@dataclass(frozen=True)
class Point:
    """One bar or point: its axis label, its value, and the text shown on hover."""

    label: str
    value: Number
    title: str = ""


def _plain(value: float) -> str:
    """An axis value as few digits as it needs (0, 2.5, 0.25, 1,500)."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts `span` into about
    `ticks` parts."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def scale(values: Sequence[Number], whole: bool = False) -> tuple[float, float, float]:
    """(low, high, step) of the value axis: round ends that hold every value and 0; with
    `whole` (counts), a step of at least 1."""
    numbers = [float(v) for v in values] or [0.0]
    low, high = min(0.0, *numbers), max(0.0, *numbers)
    if low == high:
        high = 4.0  # nothing to show: an axis of whole numbers, 0 to 4
    step = nice_step(high - low)
    if whole:
        step = max(1.0, math.ceil(step))
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


class _Frame:
    """The plot area and the value axis of one chart."""

    def __init__(self, values: Sequence[Number], width: int, height: int, whole: bool):
        self.width, self.height = width, height
        self.low, self.high, self.step = scale(values, whole)
        self.plot_w = width - LEFT - RIGHT
        self.plot_h = height - TOP - BOTTOM

    def y(self, value: Number) -> float:
        return TOP + (self.high - float(value)) / (self.high - self.low) * self.plot_h

    def axes(self, text: Callable[[float], str]) -> list[str]:
        parts = ['<g class="chart-axis">']
        n = round((self.high - self.low) / self.step)
        for i in range(n + 1):
            tick = self.low + i * self.step
            y = self.y(tick)
            parts.append(
                f'<line class="chart-grid" x1="{LEFT}" x2="{self.width - RIGHT}" '
                f'y1="{y:.2f}" y2="{y:.2f}"/>'
                f'<text class="chart-tick" x="{LEFT - 6}" y="{y + 4:.2f}" '
                f'text-anchor="end">{escape(text(tick))}</text>'
            )
        base = self.y(0)
        parts.append(
            f'<line class="chart-line-axis" x1="{LEFT}" x2="{self.width - RIGHT}" '
            f'y1="{base:.2f}" y2="{base:.2f}"/>'
            f'<line class="chart-line-axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" '
            f'y2="{TOP + self.plot_h}"/>'
        )
        parts.append("</g>")
        return parts

    def x_labels(self, points: Sequence[Point], centre: Callable[[int], float]) -> list[str]:
        # At most MAX_X_LABELS labels, evenly spread (90 dates would overlap).
        every = max(1, math.ceil(len(points) / MAX_X_LABELS))
        parts = ['<g class="chart-labels">']
        for n, point in enumerate(points):
            if n % every == 0:
                parts.append(
                    f'<text class="chart-x" x="{centre(n):.2f}" y="{TOP + self.plot_h + 18}" '
                    f'text-anchor="middle">{escape(point.label)}</text>'
                )
        parts.append("</g>")
        return parts


def _open(kind: str, label: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(label)}</title>",
    ]


def _empty(parts: list[str], frame: _Frame) -> None:
    parts.append(
        f'<text class="chart-empty" x="{LEFT + frame.plot_w / 2:.2f}" '
        f'y="{TOP + frame.plot_h / 2:.2f}" text-anchor="middle">Nothing to show</text>'
    )


def bar_chart(
    points: Sequence[Point],
    label: str,
    *,
    text: Callable[[float], str] = _plain,
    whole: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """An SVG bar chart of `points`, one <rect class="chart-bar"> each (a bar of a
    negative value hangs below the zero line), titled `label`; `text` writes the axis
    values; `whole` keeps the axis to whole numbers (counts)."""
    frame = _Frame([p.value for p in points], width, height, whole)
    parts = _open("bar", label, width, height)
    parts += frame.axes(text)
    slot = frame.plot_w / max(1, len(points))
    # A gap between bars, and no bar wider than MAX_BAR (three bars would fill the plot).
    bar = min(slot - min(slot * 0.2, 8), MAX_BAR)
    base = frame.y(0)
    parts.append('<g class="chart-bars">')
    for n, point in enumerate(points):
        top = frame.y(point.value)
        y, h = min(top, base), abs(base - top)
        parts.append(
            f'<rect class="chart-bar" x="{LEFT + (n + 0.5) * slot - bar / 2:.2f}" y="{y:.2f}" '
            f'width="{bar:.2f}" height="{h:.2f}" data-value="{escape(str(point.value))}">'
            f"<title>{escape(point.title or f'{point.label}: {point.value}')}</title></rect>"
        )
    parts.append("</g>")
    if not points:
        _empty(parts, frame)
    parts += frame.x_labels(points, lambda n: LEFT + (n + 0.5) * slot)
    parts.append("</svg>")
    # Every value put into the parts above went through escape().
    return Markup("".join(parts))  # nosec B704


def line_chart(
    points: Sequence[Point],
    label: str,
    *,
    text: Callable[[float], str] = _plain,
    whole: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """An SVG line chart of `points`: one polyline, and a <circle class="chart-point">
    per point carrying its hover <title>; titled `label`."""
    frame = _Frame([p.value for p in points], width, height, whole)
    parts = _open("line", label, width, height)
    parts += frame.axes(text)

    def x(n: int) -> float:
        if len(points) == 1:
            return LEFT + frame.plot_w / 2
        return LEFT + EDGE + n * (frame.plot_w - 2 * EDGE) / (len(points) - 1)

    coords = [(x(n), frame.y(p.value)) for n, p in enumerate(points)]
    if coords:
        line = " ".join(f"{cx:.2f},{cy:.2f}" for cx, cy in coords)
        parts.append(f'<polyline class="chart-path" points="{line}"/>')
    parts.append('<g class="chart-points">')
    for (cx, cy), point in zip(coords, points, strict=True):
        parts.append(
            f'<circle class="chart-point" cx="{cx:.2f}" cy="{cy:.2f}" r="3.5" '
            f'data-value="{escape(str(point.value))}">'
            f"<title>{escape(point.title or f'{point.label}: {point.value}')}</title></circle>"
        )
    parts.append("</g>")
    if not points:
        _empty(parts, frame)
    parts += frame.x_labels(points, x)
    parts.append("</svg>")
    # Every value put into the parts above went through escape().
    return Markup("".join(parts))  # nosec B704
