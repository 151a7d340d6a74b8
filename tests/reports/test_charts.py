"""Server-drawn SVG charts: one bar (or point) per value at the right height, the axis
ends round, labels and hover titles escaped, an image to assistive technology."""

from __future__ import annotations

import re
from decimal import Decimal

from qure.reports import charts
from qure.reports.charts import Point

PLOT_H = charts.HEIGHT - charts.TOP - charts.BOTTOM


def heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'class="chart-bar"[^>]*height="([0-9.]+)"', svg)]


def test_one_bar_per_value_its_height_its_share_of_the_axis():
    svg = str(charts.bar_chart([Point("Mon", 0), Point("Tue", 5), Point("Wed", 10)], "Visits"))
    assert heights(svg) == [0.0, round(PLOT_H / 2, 2), float(PLOT_H)]  # axis 0..10
    assert svg.count("<rect") == 3 and svg.count("<title>") == 4  # the chart's and each bar's
    assert "<title>Tue: 5</title>" in svg
    assert re.findall(r'class="chart-x"[^>]*>([^<]+)<', svg) == ["Mon", "Tue", "Wed"]
    assert svg.startswith("<svg") and 'role="img"' in svg and 'aria-label="Visits"' in svg
    assert "style=" not in svg


def test_the_axis_ends_on_a_round_number():
    assert charts.scale([7]) == (0, 8, 2)
    assert charts.scale([9]) == (0, 10, 2.5)
    assert charts.scale([Decimal("1180.00"), 90]) == (0, 1500, 500)
    assert charts.scale([]) == (0, 4, 1)  # nothing: whole numbers
    assert charts.scale([0.9]) == (0, 1, 0.25)
    assert charts.scale([1], whole=True) == (0, 1, 1)  # counts: no quarter of a visit
    assert charts.scale([7], whole=True) == (0, 8, 2)
    assert charts.nice_step(100) == 25
    svg = str(charts.bar_chart([Point("a", 9)], "x"))
    ticks = re.findall(r'class="chart-tick"[^>]*>([^<]+)<', svg)
    assert ticks == ["0", "2.5", "5", "7.5", "10"]
    assert heights(svg) == [round(PLOT_H * 0.9, 2)]


def test_a_negative_value_hangs_below_the_zero_line():
    svg = str(charts.bar_chart([Point("refunds", -5), Point("paid", 5)], "Net"))
    low, high = heights(svg)
    assert low == high == round(PLOT_H / 2, 2)
    ys = [float(y) for y in re.findall(r'class="chart-bar"[^>]*y="([0-9.]+)"', svg)]
    assert ys[0] == round(charts.TOP + PLOT_H / 2, 2)  # starts at zero, goes down


def test_many_days_keep_every_bar_but_thin_the_labels():
    svg = str(charts.bar_chart([Point(f"d{n}", n) for n in range(90)], "Ninety"))
    assert len(heights(svg)) == 90
    assert len(re.findall(r'class="chart-x"', svg)) <= charts.MAX_X_LABELS


def test_labels_and_titles_are_escaped():
    svg = str(charts.bar_chart([Point("<b>", 1, 'a "quote" & <tag>')], 'R&D <"chart">'))
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "<title>a &#34;quote&#34; &amp; &lt;tag&gt;</title>" in svg
    assert 'aria-label="R&amp;D &lt;&#34;chart&#34;&gt;"' in svg


def test_a_line_chart_has_a_point_per_value_with_its_title():
    points = [Point("Mon", Decimal("100.00"), "Mon: ₹100.00"), Point("Tue", Decimal("300.00"))]
    svg = str(charts.line_chart(points, "Revenue", text=lambda v: f"₹{v:,.0f}"))
    assert svg.count("<circle") == 2 and svg.count("<polyline") == 1
    assert "<title>Mon: ₹100.00</title>" in svg and "<title>Tue: 300.00</title>" in svg
    ys = [float(y) for y in re.findall(r'cy="([0-9.]+)"', svg)]
    assert ys[1] < ys[0]  # higher value, higher on the page
    assert "₹300<" in svg and "₹100<" in svg  # the axis: 0, 100, 200, 300


def test_an_empty_chart_says_so():
    for draw in (charts.bar_chart, charts.line_chart):
        svg = str(draw([], "Nothing"))
        assert "Nothing to show" in svg and "<rect" not in svg and "<circle" not in svg
