"""Who may log in with GitHub, and what their teams make them.

GitHub teams become JupyterHub groups named "org:team" (the same spelling as
GitHubOAuthenticator.allowed_organizations), so roles, courses and mounts can
all key on groups.
"""


def team_names(auth_state: dict) -> list[str]:
    """The "org:team" names of the teams in GitHubOAuthenticator's auth state."""
    return sorted(
        f"{team['organization']['login']}:{team['slug']}" for team in auth_state.get("teams", [])
    )


def authenticator_config(github: dict) -> dict:
    """Traitlets config for GitHubOAuthenticator from values' custom.github."""
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
    }
