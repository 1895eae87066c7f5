"""Failed GitHub logins, each turned into a page that says what happened and what to do.

OAuthenticator raises terse errors ("OAuth state mismatch", a 500 for a
timeout); the hub's error.html shows an exception's `jupyterhub_message`
instead (ref: jupyterhub 5.5 handlers/base.py write_error), so every failure of
the callback becomes a LoginError carrying a reason and a next step. Each is
also logged by the hub with its status and reason.
"""

from __future__ import annotations

from oauthenticator.oauth2 import OAuthCallbackHandler
from tornado import web
from tornado.httpclient import HTTPClientError

from coursehub.refusal import Refused

START_AGAIN = "Start again from the hub's login page."


class LoginError(Refused):
    """A failed login: the page shows `why`, then `advice` (plain text, escaped by the page).

    `detail` goes to the hub's log only, after `why`: what an operator needs and
    a stranger should not read.
    """

    def __init__(self, status: int, why: str, advice: str, detail: str = ""):
        super().__init__(status, f"{why} {advice}", why=f"{why} {detail}".strip())


class LoginRefused(LoginError):
    """GitHub vouched for the user, but they are in none of the allowed teams.

    The page does not list the teams the hub admits: anyone with a GitHub account
    can reach it, and the organization's team names (its admins' among them) are
    not theirs to learn. The hub's log has them.
    """

    def __init__(self, username: str, teams: list[str], allowed: list[str]):
        held = ", ".join(teams) if teams else "no team this hub can see"
        super().__init__(
            403,
            f"Login refused for GitHub user {username}: GitHub lists {held}, "
            "and none of these is a team of this hub's courses.",
            "Ask your instructor to add you to your course's team, then log in again. "
            "If you are in the team already, your organization may not have approved "
            "this hub's OAuth app yet, so GitHub hides your teams: ask an organization "
            "owner to approve it.",
            detail=f"(this hub admits members of {', '.join(allowed)})",
        )


def _from_github_failure(error: HTTPClientError) -> LoginError:
    if error.code == 599:  # tornado's code for a timeout or a refused connection
        return LoginError(
            504,
            f"GitHub did not answer in time ({error.message}).",
            "Wait a minute and log in again.",
        )
    return LoginError(
        502,
        f"GitHub answered {error.code} ({error.message}) while the hub checked your login.",
        "This is on GitHub's side (see githubstatus.com): wait a minute and log in again.",
    )


def _from_oauth_error(message: str) -> LoginError | None:
    if message.startswith("OAuth error"):
        return LoginError(
            403,
            "You declined to share your GitHub identity with this hub, so it cannot log you in.",
            f"{START_AGAIN} On GitHub's page choose Authorize to continue.",
        )
    if message.startswith(("OAuth state", "OAuth callback made without a code")):
        return LoginError(
            400,
            "This login link is not valid for this browser: it was already used, "
            "belongs to another login, or your cookies were cleared.",
            START_AGAIN,
        )
    if message.startswith("An access token was not returned"):
        return LoginError(
            403,
            f"GitHub refused to confirm this login: {message.partition(': ')[2]}",
            f"{START_AGAIN} If this happens again, tell the hub's admins: "
            "the hub's OAuth app settings may be wrong.",
        )
    return None


def explain(error: Exception) -> LoginError | None:
    """The LoginError for a failure of the OAuth callback, or None if it is not one we know."""
    if isinstance(error, LoginError):
        return error
    if isinstance(error, HTTPClientError):
        return _from_github_failure(error)
    if isinstance(error, web.HTTPError):
        return _from_oauth_error(error.log_message or "")
    return None


class LoginCallbackHandler(OAuthCallbackHandler):
    """OAuthenticator's callback, with every known failure turned into a LoginError."""

    async def get(self):
        try:
            await super().get()
        except Exception as error:
            explained = explain(error)
            if explained is None:
                raise
            self.log.warning("GitHub login failed: %s (%s)", explained.why, error)
            raise explained from error
