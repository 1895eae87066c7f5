"""One exception for every "no" the hub says to a person: a status and a message for them.

JupyterHub's pages show an exception's `jupyterhub_message` as it is (ref:
jupyterhub 5.5 utils.format_exception, handlers/base.py write_error), where
any other error becomes "Unhandled error" or a traceback. A refused launch
link, a refused or failed login and a start-up step that failed all raise this.
"""

from __future__ import annotations

from tornado import web


class Refused(web.HTTPError):
    """An HTTP error whose page says `message`; `why` is the short reason for the hub's log."""

    def __init__(self, status: int, message: str, *, why: str | None = None):
        # "%s": a message may contain '%' and is not a format string.
        super().__init__(status, "%s", why or message)
        self.why = why or message
        self.jupyterhub_message = message
