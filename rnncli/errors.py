"""Exception types of rnn: every mistake a user can make is one of these.

The CLI maps each to a one-line message on stderr and its exit code; nothing
below the CLI prints or exits.  Exit codes: 0 ok, 1 runtime failure or failed
gate, 2 usage or configuration error.  ``BadLine`` is the one non-exception: a
line of a stream that could not be read, carried in its place with its error, so
that a command names it and answers the lines after it.
"""


class RnnError(Exception):
    """Base of every error the CLI reports as one line, without a traceback."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(RnnError):
    """A config file or a --set override is wrong (names the key path)."""

    exit_code = 2


class UsageError(RnnError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class DataError(RnnError):
    """A corpus or prompt cannot be read or used (names the file)."""

    exit_code = 2


class CheckpointError(RnnError):
    """A checkpoint is missing, damaged or does not match (names the file)."""

    exit_code = 1


class TrainingInterrupted(RnnError):
    """SIGINT or SIGTERM stopped training; exit 130 or 143 as a shell reports a signal death."""

    label = "interrupted"

    def __init__(self, message: str, signum: int, checkpoint=None):
        super().__init__(message, 128 + signum)
        self.checkpoint = checkpoint


class OutputError(RnnError):
    """Results cannot be written: stdout closed or on a full disk (exit 1; nothing else is lost)."""

    exit_code = 1


class ResourceError(RnnError):
    """The machine lacks what a job needs (memory); says how much it would take."""

    exit_code = 1


class BadLine(str):
    """A line of a stream that cannot be read as text (``errors="strict"``): its text with the bad
    bytes replaced (to show it), ``error`` naming the source and line, and ``number``.  A command
    that answers line by line names it and goes on with the next line."""

    error: str
    number: int

    def __new__(cls, text: str, error: str, number: int) -> "BadLine":
        line = super().__new__(cls, text)
        line.error, line.number = error, number
        return line
