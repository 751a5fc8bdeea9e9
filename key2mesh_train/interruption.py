"""Stopping a long run cleanly: Ctrl-C, SIGTERM or SIGHUP end it after the step in flight,
with its state saved where ``--resume`` finds it."""

from __future__ import annotations

import signal
import threading
from pathlib import Path


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM/SIGHUP) during a run; its state was saved to ``partial``."""

    def __init__(self, partial: Path, step: int, command: str) -> None:
        super().__init__(f"interrupted at step {step}; state saved to {partial}; "
                         f"continue with '{command} --resume'")
        self.partial, self.step = partial, step


class StopRequests:
    """Ctrl-C, SIGTERM and SIGHUP (a killed terminal, a stopping service) ask the run to stop
    after the step in flight, so the saved state is a whole step and resuming is exact. A
    second Ctrl-C stops at once. Only the main thread may install handlers."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)


class CleanStop(KeyboardInterrupt):
    """Raised by a run itself between two steps once a stop was requested: its state is
    whole there and may be saved. Any other KeyboardInterrupt (a second Ctrl-C) can come
    mid-step, and the run then keeps its last saved state instead."""
