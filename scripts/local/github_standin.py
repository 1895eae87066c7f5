"""A local stand-in for GitHub's OAuth and REST endpoints. It is NOT GitHub.

It answers exactly the calls GitHubOAuthenticator makes (authorize, token
exchange, /user, /user/emails, /user/teams, /user/orgs, organization and team
membership, and the repository calls that open a pull request:
scripts/local/github_standin_repos.py)
from a fixture file of users, organizations, teams and repositories, so the local hub runs
the real OAuthenticator code path with no network and no GitHub account.

Tests steer it through /_standin/ on loopback: change team membership, make an
endpoint fail or answer slowly, hand a user a personal access token.

    coursehub github-standin --port 8765 --fixture scripts/local/hub/github-users.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import logging
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import requests
import yaml
from tornado import web

from coursehub_tools.config.yamlfiles import ROOT
from coursehub_tools.local.github_standin_repos import Repository, repositories_from, routes

log = logging.getLogger("github-standin")
BANNER = "GitHub stand-in (local test double, NOT GitHub)"
CODE_LIFETIME = 600


@dataclass
class World:
    """Users, organizations and teams, and the codes and tokens handed out."""

    users: dict[str, dict]
    organizations: dict[str, dict]
    client_id: str
    client_secret: str
    codes: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    faults: dict[str, dict] = field(default_factory=dict)
    repositories: dict[str, Repository] = field(default_factory=dict)
    # Fine-grained personal access tokens: token -> {"contents": "write", ...}.
    fine_grained: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path, client_id: str, client_secret: str) -> World:
        data = yaml.safe_load(path.read_text())
        world = cls(data["users"], data["organizations"], client_id, client_secret)
        world.repositories = repositories_from(data, ROOT)
        return world

    def is_org_member(self, org: str, login: str) -> bool:
        return login in self.organizations.get(org, {}).get("members", [])

    def is_team_member(self, org: str, team: str, login: str) -> bool:
        teams = self.organizations.get(org, {}).get("teams", {})
        return login in teams.get(team, {}).get("members", [])

    def teams_of(self, login: str) -> list[dict]:
        return [
            {
                "id": team["id"],
                "slug": slug,
                "name": slug,
                "organization": {"login": org},
            }
            for org, spec in self.organizations.items()
            for slug, team in spec.get("teams", {}).items()
            if login in team.get("members", [])
        ]

    def orgs_of(self, login: str) -> list[dict]:
        """GitHub's organization summaries (GET /user/orgs), for the organizations with an id."""
        return [
            {"login": org, "id": spec["id"], "description": spec.get("description", "")}
            for org, spec in self.organizations.items()
            if login in spec.get("members", []) and "id" in spec
        ]

    def user_model(self, login: str) -> dict:
        user = self.users[login]
        return {"login": login, "id": user["id"], "name": user["name"], "email": user["email"]}


class StandinHandler(web.RequestHandler):
    """Applies configured faults (status or delay) to the named endpoint."""

    endpoint = ""

    @property
    def world(self) -> World:
        return self.settings["world"]

    async def prepare(self):
        fault = self.world.faults.get(self.endpoint, {})
        if fault.get("delay"):
            await asyncio.sleep(fault["delay"])
        if fault.get("status"):
            log.warning("injected fault: %s answers %s", self.endpoint, fault["status"])
            self.set_status(fault["status"])
            self.finish({"message": f"{BANNER}: injected failure"})

    def write_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def login_from_token(self) -> str | None:
        auth = self.request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        return self.world.tokens.get(token)

    def require_login(self) -> str:
        login = self.login_from_token()
        if login is None:
            self.write_json({"message": "Bad credentials"}, 401)
            raise web.Finish()
        return login


class AuthorizeHandler(StandinHandler):
    """GitHub's consent page: pick a fixture user, or deny."""

    endpoint = "authorize"

    def get(self):
        if self.get_argument("client_id", "") != self.world.client_id:
            raise web.HTTPError(400, "unknown client_id")
        redirect_uri = self.get_argument("redirect_uri")
        state = self.get_argument("state", "")
        buttons = "".join(
            f'<button name="login" value="{html.escape(login)}">'
            f"Sign in as {html.escape(login)} &mdash; {html.escape(user['name'])}</button><br>"
            for login, user in self.world.users.items()
        )
        self.finish(
            f"<!doctype html><title>{BANNER}</title>"
            f"<h1>{BANNER}</h1>"
            "<p>This page stands in for github.com on a local coursehub hub. "
            "Choose who to sign in as; no password is asked.</p>"
            f'<form method="post">'
            f'<input type="hidden" name="redirect_uri" value="{html.escape(redirect_uri)}">'
            f'<input type="hidden" name="state" value="{html.escape(state)}">'
            f"{buttons}"
            '<button name="deny" value="1">Cancel (deny access)</button></form>'
        )

    def post(self):
        redirect_uri = self.get_argument("redirect_uri")
        state = self.get_argument("state", "")
        if self.get_argument("deny", ""):
            log.info("consent denied")
            query = {"error": "access_denied", "state": state}
            query["error_description"] = "The user has denied your application access."
            self.redirect(f"{redirect_uri}?{urlencode(query)}")
            return
        login = self.get_argument("login")
        if login not in self.world.users:
            raise web.HTTPError(400, f"no such user in the stand-in's fixture: {login}")
        code = secrets.token_urlsafe(16)
        self.world.codes[code] = (login, redirect_uri, time.monotonic())
        log.info("authorized %s", login)
        self.redirect(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")


class TokenHandler(StandinHandler):
    """Exchange a one-time code for an access token."""

    endpoint = "token"

    def post(self):
        if (
            self.get_argument("client_id", "") != self.world.client_id
            or self.get_argument("client_secret", "") != self.world.client_secret
        ):
            self.write_json(
                {
                    "error": "incorrect_client_credentials",
                    "error_description": "The client_id and/or client_secret passed are incorrect.",
                }
            )
            return
        grant = self.world.codes.pop(self.get_argument("code", ""), None)
        if grant is None or time.monotonic() - grant[2] > CODE_LIFETIME:
            # GitHub answers 200 with an error body for a bad or reused code.
            log.warning("refused an unknown, used or expired code")
            self.write_json(
                {
                    "error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired.",
                }
            )
            return
        login, _redirect_uri, _issued = grant
        log.info("issued an access token for %s", login)
        token = secrets.token_urlsafe(24)
        self.world.tokens[token] = login
        self.write_json(
            {"access_token": token, "token_type": "bearer", "scope": "read:org,read:user"}
        )


class UserHandler(StandinHandler):
    endpoint = "user"

    def get(self):
        self.write_json(self.world.user_model(self.require_login()))


class EmailsHandler(StandinHandler):
    endpoint = "emails"

    def get(self):
        login = self.require_login()
        email = self.world.users[login]["email"]
        self.write_json([{"email": email, "primary": True, "verified": True}])


class ListHandler(StandinHandler):
    """A list GitHub answers a page at a time: ?per_page (30 unless given, at most 100)
    and ?page, with a Link header naming the next and last pages, as GitHub's REST API.
    ref: https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api
    """

    def items(self, login: str) -> list[dict]:
        raise NotImplementedError

    def get(self):
        everything = self.items(self.require_login())
        per_page = min(int(self.get_argument("per_page", "30")), 100)
        page = int(self.get_argument("page", "1"))
        last = max(1, -(-len(everything) // per_page))
        base = f"{self.request.protocol}://{self.request.host}{self.request.path}"
        # GitHub names next and last up to the last page, prev and first after the first.
        pages = {"next": page + 1, "last": last} if page < last else {}
        pages |= {"prev": page - 1, "first": 1} if page > 1 else {}
        links = [
            f'<{base}?{urlencode({"per_page": per_page, "page": number})}>; rel="{rel}"'
            for rel, number in pages.items()
        ]
        if links:
            self.set_header("Link", ", ".join(links))
        self.write_json(everything[(page - 1) * per_page : page * per_page])


class TeamsHandler(ListHandler):
    endpoint = "teams"

    def items(self, login: str) -> list[dict]:
        return self.world.teams_of(login)


class OrgsHandler(ListHandler):
    endpoint = "orgs"

    def items(self, login: str) -> list[dict]:
        return self.world.orgs_of(login)


class OrgMemberHandler(StandinHandler):
    endpoint = "membership"

    def get(self, org: str, login: str):
        self.require_login()
        self.set_status(204 if self.world.is_org_member(org, login) else 404)
        self.finish()


class TeamMemberHandler(StandinHandler):
    endpoint = "membership"

    def get(self, org: str, team: str, login: str):
        self.require_login()
        self.set_status(204 if self.world.is_team_member(org, team, login) else 404)
        self.finish()


class ControlTeamHandler(web.RequestHandler):
    """Tests add or remove team members: PUT/DELETE /_standin/teams/<org>/<team>/<login>."""

    def _members(self, org: str, team: str) -> list[str]:
        return self.settings["world"].organizations[org]["teams"][team]["members"]

    def put(self, org: str, team: str, login: str):
        members = self._members(org, team)
        if login not in members:
            members.append(login)
        self.set_status(204)

    def delete(self, org: str, team: str, login: str):
        members = self._members(org, team)
        if login in members:
            members.remove(login)
        self.set_status(204)


class ControlFaultHandler(web.RequestHandler):
    """Tests make an endpoint fail: PUT /_standin/faults/<endpoint> {"status": 502, "delay": 0}."""

    def put(self, endpoint: str):
        self.settings["world"].faults[endpoint] = json.loads(self.request.body or b"{}")
        self.set_status(204)

    def delete(self, endpoint: str):
        self.settings["world"].faults.pop(endpoint, None)
        self.set_status(204)


class ControlTokenHandler(web.RequestHandler):
    """Tests act as a user on the API (an approver merging): POST /_standin/tokens/<login>
    answers {"token": ...}, as a personal access token made on GitHub's settings page;
    with a body {"permissions": {"contents": "write", "pull_requests": "read"}} a
    fine-grained one, which may write only what it names "write"."""

    def post(self, login: str):
        token = secrets.token_urlsafe(24)
        world = self.settings["world"]
        world.tokens[token] = login
        permissions = json.loads(self.request.body or b"{}").get("permissions")
        if permissions is not None:
            world.fine_grained[token] = permissions
        self.finish({"token": token})


def make_app(world: World, public_url: str = "") -> web.Application:
    name = r"([A-Za-z0-9_.-]+)"
    return web.Application(
        [
            *routes(),
            (r"/login/oauth/authorize", AuthorizeHandler),
            (r"/login/oauth/access_token", TokenHandler),
            (r"/api/v3/user", UserHandler),
            (r"/api/v3/user/emails", EmailsHandler),
            (r"/api/v3/user/teams", TeamsHandler),
            (r"/api/v3/user/orgs", OrgsHandler),
            (rf"/api/v3/orgs/{name}/members/{name}", OrgMemberHandler),
            (rf"/api/v3/orgs/{name}/teams/{name}/members/{name}", TeamMemberHandler),
            (rf"/_standin/teams/{name}/{name}/{name}", ControlTeamHandler),
            (rf"/_standin/faults/{name}", ControlFaultHandler),
            (rf"/_standin/tokens/{name}", ControlTokenHandler),
        ],
        world=world,
        public_url=public_url,
    )


def set_membership(standin_url: str, team: str, login: str, member: bool) -> None:
    """Add `login` to, or remove them from, team "org:team" (a test's or the book's step)."""
    path = f"/_standin/teams/{team.replace(':', '/')}/{login}"
    response = requests.request("PUT" if member else "DELETE", standin_url + path, timeout=10)
    response.raise_for_status()


@contextlib.contextmanager
def github_fault(standin_url: str, endpoint: str, **fault):
    """While inside, `endpoint` fails as told: status=502 and/or delay=seconds."""
    url = f"{standin_url}/_standin/faults/{endpoint}"
    requests.put(url, json=fault, timeout=10).raise_for_status()
    try:
        yield
    finally:
        requests.delete(url, timeout=10).raise_for_status()


async def serve(args: argparse.Namespace) -> None:
    world = World.from_file(Path(args.fixture), args.client_id, args.client_secret)
    for given in args.token:
        login, _, token = given.partition("=")
        world.tokens[token] = login
    make_app(world, f"http://127.0.0.1:{args.port}").listen(args.port, address="127.0.0.1")
    log.warning("%s listening on http://127.0.0.1:%s", BANNER, args.port)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fixture", required=True, help="users, organizations and teams (YAML)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument(
        "--token", action="append", default=[], metavar="LOGIN=TOKEN",
        help="a personal access token of LOGIN's (a bot's, for a service that opens pull requests)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # Every line says it comes from the stand-in, so nobody reading a log
    # mixed with the hub's mistakes it for GitHub.
    logging.basicConfig(level=logging.INFO, format=f"[%(levelname)s {BANNER}] %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
