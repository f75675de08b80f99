"""SIGTERM and SIGINT during training: fail cleanly, or finish the one step that must not be cut.

Python's default SIGTERM ends the process on the spot: no ``finally``, so an MLflow run stays
``RUNNING`` and a staging folder stays behind. :class:`StopSignals` turns both signals into
:class:`TrainingInterrupted`, an exception every ``with``/``finally`` on the way out sees: the
MLflow run is ended ``FAILED`` and nothing is published. Registering a model version, putting
its folder in place and moving the alias must happen together or not at all, so inside
:meth:`StopSignals.hold` a signal is only noted, and raised when that step is done.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal; ``committed`` says whether the model was registered first."""

    def __init__(self, signum: int, committed: bool = False):
        self.signum = signum
        self.committed = committed
        name = signal.Signals(signum).name
        if committed:
            text = f"stopped by {name} after the model was saved and registered (nothing lost)"
        else:
            text = (
                f"stopped by {name}: no model saved or registered "
                "(an MLflow run already started is marked FAILED)"
            )
        super().__init__(text)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Context manager: SIGTERM/SIGINT raise :class:`TrainingInterrupted` while it is active.

    Signal handlers belong to the main thread; elsewhere (training called from a worker
    thread) it does nothing and the host application keeps its own handling.
    """

    def __init__(self) -> None:
        self._previous: dict[int, object] = {}
        self._holding = 0
        self._pending: int | None = None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._holding:
            self._pending = self._pending or signum
            return
        raise TrainingInterrupted(signum)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Note signals instead of raising until the block ends; then raise the first one."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and self._pending is not None:
            signum, self._pending = self._pending, None
            raise TrainingInterrupted(signum, committed=True)
