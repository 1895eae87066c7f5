"""Who may log in with GitHub, and what their teams make them.

GitHub teams become JupyterHub groups named "org:team" (the same spelling as
GitHubOAuthenticator.allowed_organizations), so roles, courses and mounts can
all key on groups. Membership is checked again whenever the hub refreshes a
user's auth, so someone removed from their team loses access then.
"""

from __future__ import annotations

import time

from oauthenticator.github import GitHubOAuthenticator
from traitlets import Bool, Callable, Dict, Float, Unicode

from coursehub.courses import course_day, load_courses
from coursehub.enrollment import (
    SERVICE_NAME,
    check_invite,
    invited_course,
    is_enrollment_group,
    waiting_for_approval,
)
from coursehub.launch_handler import CourseLinksMixin
from coursehub.login_errors import LoginCallbackHandler, LoginRefused
from coursehub.unix_ids import unix_ids


def team_names(auth_state: dict) -> list[str]:
    """The "org:team" names of the teams in GitHubOAuthenticator's auth state."""
    return sorted(
        f"{team['organization']['login']}:{team['slug']}" for team in auth_state.get("teams", [])
    )


# Where the authenticator notes, in a login's auth model, the invite link it follows.
INVITE_KEY = "coursehub_invite"


def _keep_enrollments(auth_model: dict, current_groups: list[str]) -> None:
    """Add the user's enrollment groups to the groups GitHub's teams give them."""
    kept = [name for name in current_groups if is_enrollment_group(name)]
    auth_model["groups"] = sorted({*auth_model.get("groups", []), *kept})


def authenticator_config(github: dict) -> dict:
    """Traitlets config for CoursehubGitHubOAuthenticator from values' custom.github."""
    teams = github["adminTeams"] + github["instructorTeams"] + github["studentTeams"]
    return {
        # Membership of any listed team lets a user in; nobody else.
        "allowed_organizations": set(teams),
        # ref: https://oauthenticator.readthedocs.io/en/latest/reference/api/gen/oauthenticator.github.html
        # teams are fetched at every login into auth_state["teams"] (needs read:org).
        "populate_teams_in_auth_state": True,
        "manage_groups": True,
        "auth_state_groups_key": team_names,
        "admin_groups": set(github["adminTeams"]),
        # True would let anyone with a user row back in after leaving their
        # team; the team is the only source of truth here.
        "allow_existing_users": False,
        "unix_ids_from_github": github["unixIds"],
        "smoke_test_group": github.get("smokeTestGroup", ""),
    }


class CoursehubGitHubOAuthenticator(CourseLinksMixin, GitHubOAuthenticator):
    """GitHubOAuthenticator that re-checks team membership at every auth refresh,
    refuses with a page that says why, and can run servers with GitHub's numeric ids."""

    callback_handler = LoginCallbackHandler

    unix_ids_from_github = Bool(
        False,
        config=True,
        help="""Run each server with uid = the user's GitHub id and supplemental
        gids = the ids of their GitHub organizations and teams (needs a spawner with `uid` and
        `supplemental_gids`, such as KubeSpawner).""",
    )

    membership_fresh_for = Float(
        60,
        config=True,
        help="""Seconds a successful membership check stands before a server start
        asks GitHub again. The start right after a login would otherwise repeat
        the check the login just made; under a class's burst of logins that
        repeat is GitHub calls and database writes for every student, and it
        runs before JupyterHub marks the start pending, so the spawn page shows
        "Server not running" while it waits. 0 checks at every start; never
        longer than Authenticator.auth_refresh_age.""",
    )

    smoke_test_group = Unicode(
        "",
        config=True,
        help="""Members of this group were made through the REST API by the deploy
        pipeline's smoke test, not by a GitHub login, so they have no GitHub token:
        their auth refresh (before each server start) succeeds without asking
        GitHub. Only a holder of admin:groups can put a user in it. Empty: nobody.""",
    )

    invite_key = Unicode(
        "",
        config=True,
        help="""The key invite links are signed with: the enrollment service's API
        token (hub-config/jupyterhub_config.d/30-enrollment.py). Someone in none of
        the allowed teams may log in through a link it signed, to apply to that
        course. Empty: nobody logs in by invite.""",
    )

    courses = Dict(
        config=True,
        help="custom.courses: an invite admits only to a course open to applicants.",
    )

    today = Unicode(
        "",
        config=True,
        help="Pretend today is this date (YYYY-MM-DD) when checking invites; empty: UTC today.",
    )

    clock = Callable(
        time.monotonic,
        help="Seconds from any fixed point; membership_fresh_for is counted on it (tests move it).",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # When each user's membership was last confirmed (on `clock`); in
        # memory, so a restarted hub checks everyone again.
        self._confirmed_at: dict[str, float] = {}

    async def authenticate(self, handler, data=None, **kwargs):
        """OAuthenticator's login, plus two things only the hub knows: the groups an
        invite admitted the user to, and the course of the invite link being followed.

        With manage_groups, JupyterHub makes the user's groups exactly the returned
        ones, so the enrollment groups are returned too or a login would drop them.
        """
        auth_model = await super().authenticate(handler, data, **kwargs)
        if auth_model is None:
            return None
        user = handler.find_user(self.normalize_username(auth_model["name"]))
        _keep_enrollments(auth_model, [group.name for group in user.groups] if user else [])
        service_prefix = f"{handler.base_url}services/{SERVICE_NAME}/"
        auth_model[INVITE_KEY] = invited_course(handler.get_next_url(), service_prefix)
        return auth_model

    async def check_allowed(self, username, auth_model):
        """Allow members of allowed teams and admitted applicants, and someone following a
        good invite link; refuse anyone else with a page saying why (LoginRefused, 403)."""
        if auth_model is None:
            return True
        teams = set(team_names(auth_model["auth_state"]))
        enrolled = any(map(is_enrollment_group, auth_model.get("groups", [])))
        # The teams were fetched just before this (populate_teams_in_auth_state),
        # with errors raised; GitHub's per-team membership calls, which the base
        # class makes, report a GitHub failure as "not a member".
        if (
            teams & self.allowed_organizations
            or enrolled
            or await super().check_allowed(username, auth_model)
        ):
            self._confirmed_at[username] = self.clock()
            return True
        self._confirmed_at.pop(username, None)
        if invite := auth_model.get(INVITE_KEY):
            self._check_invite(*invite)
            self.log.info("%s logs in to apply to %s by invite link", username, invite[0])
            return True
        raise LoginRefused(username, sorted(teams), sorted(self.allowed_organizations))

    def _check_invite(self, slug: str, token: str) -> None:
        """Refused unless the invite is good and its course takes applications today."""
        course = next((c for c in load_courses(self.courses) if c.slug == slug), None)
        check_invite(self.invite_key, slug, token, course_day(self.today), course)

    async def refresh_user(self, user, handler=None, **kwargs):
        """Refresh as OAuthenticator does, then require membership again.

        OAuthenticator's refresh_user fetches fresh teams and groups but does not
        call check_allowed (ref: oauthenticator 17.4 oauth2.py refresh_user);
        returning False makes JupyterHub require a new login, which refuses.
        A membership confirmed less than membership_fresh_for seconds ago stands.
        """
        if self.smoke_test_group and self.smoke_test_group in (g.name for g in user.groups):
            return True
        confirmed = self._confirmed_at.get(user.name)
        # Never longer than JupyterHub's own refresh interval, which it bounds.
        fresh_for = min(self.membership_fresh_for, self.auth_refresh_age)
        if confirmed is not None and self.clock() - confirmed < fresh_for:
            return True
        auth_model = await super().refresh_user(user, handler, **kwargs)
        if not isinstance(auth_model, dict):
            return auth_model
        _keep_enrollments(auth_model, [group.name for group in user.groups])
        try:
            await self.check_allowed(user.name, auth_model)
        except LoginRefused as refused:
            if self.manage_groups:
                # Leave the team's groups now, not at a next login that will be
                # refused: instructors' roles and course access key on them.
                user.sync_groups(auth_model["groups"])
            if waiting := waiting_for_approval(user.db, user.name):
                # An applicant keeps their session while an instructor decides: it
                # reaches the enrollment service and nothing else (the user role),
                # and the spawner tells them what they wait for. Revoking it would
                # send them to a login that refuses them, as if they had not applied.
                self.log.info("%s waits for approval to %s", user.name, ", ".join(waiting))
                return True
            self.log.warning("Revoking %s's session: %s", user.name, refused.why)
            await self._stop_servers(user, handler)
            return False
        return auth_model

    async def _stop_servers(self, user, handler) -> None:
        """Stop the servers of someone whose session is revoked, at once.

        Left running, a removed student's server would go on (and their code with
        it, reachable through any token it holds) until the culler found it idle.
        """
        if handler is None:
            return
        for name, spawner in list(user.spawners.items()):
            # ref: jupyterhub 5.5 BaseHandler.stop_single_user refuses a pending spawner;
            # a start in progress is refused at its end, when the hub checks the user.
            if spawner.active and not spawner.pending:
                self.log.warning("Stopping %s's server %r: session revoked", user.name, name)
                await handler.stop_single_user(user, name)

    async def update_auth_model(self, auth_model):
        """OAuthenticator's, plus the user's organizations when they give gids.

        GitHubOAuthenticator fetches the teams (populate_teams_in_auth_state) but not
        the organizations; GET /user/orgs lists those the user is a member of, private
        memberships too with read:org, a page at a time.
        ref: https://docs.github.com/en/rest/orgs/orgs#list-organizations-for-the-authenticated-user
        """
        auth_model = await super().update_auth_model(auth_model)
        if self.unix_ids_from_github:
            token = auth_model["auth_state"]["token_response"]
            # Upstream's own paging (it follows GitHub's Link header), as for the teams.
            auth_model["auth_state"]["organizations"] = await self._paginated_fetch(
                f"{self.github_api}/user/orgs?per_page=100",
                token["access_token"],
                token["token_type"],
            )
        return auth_model

    async def pre_spawn_start(self, user, spawner):
        """Set the server's uid and supplemental gids from GitHub when configured."""
        if not self.unix_ids_from_github:
            return
        uid, gids = unix_ids(await user.get_auth_state())
        spawner.uid = uid
        spawner.supplemental_gids = gids
        self.log.info("Running %s's server as uid %s with groups %s", user.name, uid, gids)
