"""One exception for every "no" the hub says to a person: a status and a message for them.

JupyterHub's pages show an exception's `jupyterhub_message` as it is (ref:
jupyterhub 5.5 utils.format_exception, handlers/base.py write_error), where
any other error becomes "Unhandled error" or a traceback. A refused launch
link, a refused or failed login and a start-up step that failed all raise this.

A refusal (4xx) is expected, not a fault of the hub: the log gets one warning
line with its status and reason (RefusalsAsWarnings), not an error with a traceback.
"""

from __future__ import annotations

import logging

from tornado import web


class Refused(web.HTTPError):
    """An HTTP error whose page says `message`; `why` is the short reason for the hub's log."""

    def __init__(self, status: int, message: str, *, why: str | None = None):
        # "%s": a message may contain '%' and is not a format string.
        super().__init__(status, "%s", why or message)
        self.why = why or message
        self.jupyterhub_message = message


class RefusalsAsWarnings(logging.Filter):
    """For the hub's logger: a record carrying a Refused becomes one WARNING line.

    JupyterHub logs whatever a spawner's options_from_query raises at ERROR with
    its traceback, then shows the exception's status and message on its page
    (ref: jupyterhub 5.5 handlers/pages.py SpawnHandler._get, "Failed to spawn
    single-user server with query arguments"), which is how a launch link a
    student may not follow is refused. The page is right; the record is made
    what a refusal is: its line, its status and why, no traceback. A 5xx (a
    start-up step that failed) is a fault to look into, and keeps its record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        refused = record.exc_info[1] if record.exc_info else None
        if isinstance(refused, Refused) and refused.status_code < 500:
            record.msg = f"{record.getMessage()}: {refused.status_code} {refused.why}"
            record.args = ()
            record.levelno, record.levelname = (
                logging.WARNING,
                logging.getLevelName(logging.WARNING),
            )
            record.exc_info = record.exc_text = None
        return True
