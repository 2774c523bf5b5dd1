"""How much of the time a node's timer callbacks take, so a flood of them can be stopped.

`TimerBudget.over(started, ended)` records one callback's evaluation (monotonic seconds) and says
whether the callbacks that ended in the last `window` seconds took more than `share` of it: a
`setInterval` of a 900 ms callback every 1 ms gets there within two seconds, an interval of light
callbacks never does.
"""

from __future__ import annotations

from collections import deque

DEFAULT_WINDOW = 3.0
DEFAULT_SHARE = 0.5


class TimerBudget:
    """Busy time of timer callbacks over a sliding window; see the module docstring."""

    def __init__(self, window: float = DEFAULT_WINDOW, share: float = DEFAULT_SHARE) -> None:
        if window <= 0 or not 0 < share <= 1:
            raise ValueError(
                f"timer budget: window must be > 0 and share in (0, 1], not {window!r}, {share!r}"
            )
        self.window = window
        self.share = share
        self._spans: deque[tuple[float, float]] = deque()
        self._busy = 0.0

    def over(self, started: float, ended: float) -> bool:
        """Record a callback that ran from `started` to `ended`; True when the share is exceeded."""
        self._spans.append((ended, max(ended - started, 0.0)))
        self._busy += max(ended - started, 0.0)
        horizon = ended - self.window
        while self._spans and self._spans[0][0] < horizon:
            self._busy -= self._spans.popleft()[1]
        return self._busy > self.share * self.window

    def reset(self) -> None:
        """Forget what was recorded."""
        self._spans.clear()
        self._busy = 0.0
