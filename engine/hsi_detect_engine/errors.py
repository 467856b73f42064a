"""The engine's own exceptions: one sentence that says what is wrong and what to do."""


class HsiDetectError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


class Cancelled(HsiDetectError):
    """The run was cancelled by the user; no output was written."""

    def __init__(self, message: str = "The run was cancelled; no output was written."):
        super().__init__(message)
