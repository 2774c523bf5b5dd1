"""Where a node added without a pointer position goes (the palette's keyboard path, a double-click on an entry).

Node-RED's quick-add puts the new node where the user is looking, never on top of another. Here: the first spot,
column by column from the top left of the part of the canvas in view, where the new node's box (with a margin)
meets no drawn node; when the view is full, just below the lowest node. Boxes are (left, top, right, bottom) in
canvas coordinates; spots are a node's centre (a flow node's x, y).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

Box = tuple[float, float, float, float]

GAP = 10
"""Space kept free around the new node."""
ROW = 40
"""Distance between the rows tried (a node is 30 high)."""
EDGE = 30
"""Distance from the view's left and top edges (ports stick out of a node's box)."""
MIN_COLUMN = 160
"""Narrowest distance between the columns tried."""
TRIES = 600
"""Most spots tried (a view zoomed far out holds thousands): then below the lowest node."""


def overlaps(a: Box, b: Box, gap: float = GAP) -> bool:
    """Whether boxes `a` and `b` come closer than `gap`."""
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def box_at(x: float, y: float, width: float, height: float) -> Box:
    """The box of a node of that size centred on (x, y)."""
    return (x - width / 2, y - height / 2, x + width / 2, y + height / 2)


def clear_spot(
    taken: list[Box], width: float, height: float, area: Box, tries: int = TRIES
) -> tuple[int, int]:
    """The centre of a `width` x `height` node inside `area` clear of every box in `taken`, or, when the area
    has no room within `tries` spots, below all of them (at the area's left)."""
    left, top = round(area[0] + EDGE + width / 2), round(area[1] + EDGE + height / 2)
    column = round(max(MIN_COLUMN, width + 2 * GAP))
    for x, y in _spots(left, top, column, width, height, area, tries):
        spot = box_at(x, y, width, height)
        if not any(overlaps(spot, other) for other in taken):
            return x, y
    lowest = max((b[3] for b in taken), default=area[1])
    return left, max(top, math.ceil(lowest + GAP + 1 + height / 2))


def _spots(
    left: int, top: int, column: int, width: float, height: float, area: Box, tries: int
) -> Iterator[tuple[int, int]]:
    """Candidate centres, down each column, columns left to right, all inside `area` (at least the first)."""
    x, count = left, 0
    while count < tries and (count == 0 or x + width / 2 <= area[2]):
        y = top
        while count < tries and (y == top or y + height / 2 <= area[3]):
            yield x, y
            count += 1
            y += ROW
        x += column
