"""Errors that reach the user as one line and a documented exit code.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input, 3 a quality threshold not met,
130 interrupted (Ctrl-C).
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_THRESHOLD = 3
EXIT_INTERRUPTED = 130


class RlsdError(Exception):
    """An expected failure: the message is shown as one line, without a traceback."""

    exit_code = EXIT_FAILURE
    # Long paths and values in the line are cut in the middle, except in a message holding a command to copy.
    shortened = True


class BadInputError(RlsdError):
    """The user's input (a path, a model spec, a flag, a data file) cannot be used; the message says the fix."""

    exit_code = EXIT_BAD_INPUT


class ThresholdNotMet(RlsdError):
    exit_code = EXIT_THRESHOLD
