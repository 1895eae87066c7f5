"""Unix identity from GitHub identity, as LSST's hub does it.

A GitHub account's numeric id never changes and is never reused, and neither is
a team's or an organization's, so they can serve as uid and gids (the
organizations' and the teams' ids a user is a member of): the same person gets the same uid
on every node and every NFS server, with no directory to keep in sync. Off by
default (custom.github.unixIds); the chapter on authentication says what it
means for NFS.
"""

from __future__ import annotations

# Below this, ids belong to the system (login.defs UID_MIN); the oldest GitHub
# accounts have ids this small.
FIRST_USER_ID = 1000


def unix_ids(auth_state: dict) -> tuple[int, list[int]]:
    """(uid, supplemental gids) from GitHubOAuthenticator's auth state.

    "teams" is GitHubOAuthenticator's (populate_teams_in_auth_state);
    "organizations" is ours (CoursehubGitHubOAuthenticator.update_auth_model).
    """
    uid = auth_state["github_user"]["id"]
    if uid < FIRST_USER_ID:
        raise ValueError(f"GitHub id {uid} is a system uid (below {FIRST_USER_ID})")
    groups = auth_state.get("organizations", []) + auth_state.get("teams", [])
    return uid, sorted({group["id"] for group in groups})
