"""SIGINT/SIGTERM during training, turned into a stop request that the training loop polls.

A process concern: the CLI installs the handlers around ``rnn train`` (and
``run_training`` does, for library callers that pass no stop request).  Before
the loop is running (reading the corpus) a signal stops at once; while it runs,
the first signal asks it to finish the current window, save and stop; a second
one stops at once.  Handlers can only be installed in the main thread.
"""

from __future__ import annotations

import signal
import threading

from .errors import TrainingInterrupted


class StopRequest:
    """What the signal handlers tell the training loop: the signal received, if any."""

    def __init__(self, notice=None):
        self.received: int | None = None
        self.deferred = False  # set by the loop once it can save before stopping
        # called with the signal number the moment a signal asks for a save-and-stop, so the user
        # hears at once that the stop is under way (under mpirun the launcher may tear the job's
        # output down before the save is done and the closing line is printed)
        self.notice = notice


class handle_signals:
    """Context manager: SIGINT/SIGTERM set a StopRequest (or raise TrainingInterrupted at once)."""

    def __init__(self, stop: StopRequest | None = None):
        self.stop = stop or StopRequest()
        self.old: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self.stop

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        if self.stop.deferred and self.stop.received is None:
            self.stop.received = signum
            if self.stop.notice is not None:
                self.stop.notice(signum)
            return
        self.stop.received = signum
        raise TrainingInterrupted(
            f"{signal.Signals(signum).name} received: stopped without saving (the last checkpoint, if any, is intact)",
            signum,
        )
