"""Small static SVG charts for the report: grouped bars and lines. No script, no fetch.

Every text that reaches the SVG is escaped; sizes are in SVG user units (pixels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT = 560, 236
LEFT, RIGHT, TOP, BOTTOM = 48, 40, 32, 44
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def _frame(body: list[str], title: str, legend: Sequence[str]) -> str:
    keys = "".join(
        f'<rect x="{LEFT + i * 130}" y="{HEIGHT - 14}" width="10" height="10" '
        f'fill="{COLOURS[i % len(COLOURS)]}"/><text x="{LEFT + i * 130 + 14}" '
        f'y="{HEIGHT - 5}" font-size="11">{escape(name)}</text>'
        for i, name in enumerate(legend)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="bold">{escape(title)}</text>'
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="#888"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#888"/>'
        + "".join(body)
        + keys
        + "</svg>"
    )


def _y_axis(top: float) -> list[str]:
    inner = HEIGHT - TOP - BOTTOM
    marks = []
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - BOTTOM - inner * i / 4
        marks.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{value:.3g}</text>"
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#eee"/>'
        )
    return marks


def bars(title: str, groups: Sequence[str], series: Mapping[str, Sequence[float]]) -> str:
    """Bars per group (a bin or a category), one colour per series (reference, current)."""
    top = max([v for values in series.values() for v in values] + [1e-9]) * 1.1
    inner_w = WIDTH - LEFT - RIGHT
    inner_h = HEIGHT - TOP - BOTTOM
    slot = inner_w / max(len(groups), 1)
    bar = slot * 0.8 / max(len(series), 1)
    body = _y_axis(top)
    for s, (name, values) in enumerate(series.items()):
        for g, value in enumerate(values):
            h = inner_h * value / top
            x = LEFT + g * slot + slot * 0.1 + s * bar
            body.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{COLOURS[s % len(COLOURS)]}">'
                f"<title>{escape(name)} {escape(groups[g])}: {value:.3g}</title></rect>"
            )
    step = max(1, len(groups) // 10)
    for g in range(0, len(groups), step):
        body.append(
            f'<text x="{LEFT + (g + 0.5) * slot:.1f}" y="{HEIGHT - BOTTOM + 13}" '
            f'font-size="10" text-anchor="middle">{escape(groups[g][:12])}</text>'
        )
    return _frame(body, title, list(series))


def lines(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    threshold: float | None = None,
) -> str:
    """A line per series over ``labels`` (windows); a dashed line at ``threshold``."""
    values = [v for vs in series.values() for v in vs if v is not None]
    top = max(values + [threshold or 0.0, 1e-9]) * 1.15
    inner_w = WIDTH - LEFT - RIGHT
    inner_h = HEIGHT - TOP - BOTTOM
    step = inner_w / max(len(labels) - 1, 1)

    def point(i: int, v: float) -> str:
        return f"{LEFT + i * step:.1f},{HEIGHT - BOTTOM - inner_h * v / top:.1f}"

    body = _y_axis(top)
    if threshold is not None:
        y = HEIGHT - BOTTOM - inner_h * threshold / top
        body.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#c44e52" stroke-dasharray="4 3"><title>threshold {threshold:g}</title>'
            "</line>"
        )
    for s, (name, vs) in enumerate(series.items()):
        colour = COLOURS[s % len(COLOURS)]
        points = [point(i, v) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            body.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        for i, v in enumerate(vs):
            if v is not None:
                cx, cy = point(i, v).split(",")
                body.append(
                    f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}">'
                    f"<title>{escape(name)} {escape(labels[i])}: {v:.4g}</title></circle>"
                )
    every = max(1, len(labels) // 6)
    for i in range(0, len(labels), every):
        body.append(
            f'<text x="{LEFT + i * step:.1f}" y="{HEIGHT - BOTTOM + 13}" font-size="10" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    return _frame(body, title, list(series))
