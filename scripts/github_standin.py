"""A local stand-in for GitHub's OAuth and REST endpoints. It is NOT GitHub.

It answers exactly the calls GitHubOAuthenticator makes (authorize, token
exchange, /user, /user/emails, /user/teams, /user/orgs, organization and team
membership)
from a fixture file of users, organizations and teams, so the local hub runs
the real OAuthenticator code path with no network and no GitHub account.
And the few repository calls that propose a registry change as a pull request
(scripts/course_image.py): a branch's ref, a new branch, a file's contents read
and written on a branch, pull requests opened and listed; with GitHub's answers
when a token is missing (401), lacks the fine-grained permission (403), or the
branch or pull request exists already (422).

Tests steer it through /_standin/ on loopback: change team membership, make an
endpoint fail or answer slowly.

    coursehub-github-standin --port 8765 --fixture scripts/localhub/github-users.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
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

log = logging.getLogger("github-standin")
BANNER = "GitHub stand-in (local test double, NOT GitHub)"
CODE_LIFETIME = 600


@dataclass
class Repository:
    """Branches as commits of whole file trees; enough for a pull request's life."""

    default_branch: str
    commits: dict[str, dict[str, str]]  # sha -> {path: text}
    branches: dict[str, str]  # name -> sha
    pulls: list[dict] = field(default_factory=list)

    @classmethod
    def with_files(cls, files: dict[str, str], default_branch: str = "main") -> Repository:
        sha = commit_sha(files, "")
        return cls(default_branch, {sha: dict(files)}, {default_branch: sha})

    def commit(self, branch: str, path: str, text: str) -> str:
        files = {**self.commits[self.branches[branch]], path: text}
        sha = commit_sha(files, self.branches[branch])
        self.commits[sha] = files
        self.branches[branch] = sha
        return sha


def commit_sha(files: dict[str, str], parent: str) -> str:
    return hashlib.sha1(json.dumps([files, parent], sort_keys=True).encode()).hexdigest()


def blob_sha(text: str) -> str:
    """Git's blob id, which GitHub's contents API names a file's version by."""
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


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
    # Tokens for the repository API, made by a test: token -> login and permissions.
    grants: dict[str, dict] = field(default_factory=dict)
    repositories: dict[str, Repository] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path, client_id: str, client_secret: str) -> World:
        data = yaml.safe_load(path.read_text())
        return cls(data["users"], data["organizations"], client_id, client_secret)

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


class RepositoryHandler(StandinHandler):
    """GitHub's REST answers for one repository, with its permission checks.

    ref: https://docs.github.com/en/rest/authentication/permissions-required-for-fine-grained-personal-access-tokens
    Stand-in repositories are public: reading needs no token, writing a grant of
    `contents` or `pull_requests` at "write".
    """

    endpoint = "repository"

    def repository(self, owner: str, name: str) -> Repository:
        found = self.world.repositories.get(f"{owner}/{name}")
        if found is None:
            self.not_found()
        return found

    def not_found(self):
        self.write_json({"message": "Not Found", "status": "404"}, 404)
        raise web.Finish()

    def unprocessable(self, message: str):
        self.write_json({"message": message, "status": "422"}, 422)
        raise web.Finish()

    def require(self, permission: str) -> str:
        """The token's login, if it may write `permission`; GitHub's 401 or 403 if not."""
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if not token:
            self.write_json({"message": "Requires authentication", "status": "401"}, 401)
            raise web.Finish()
        grant = self.world.grants.get(token)
        if scheme.lower() not in ("token", "bearer") or grant is None:
            self.write_json({"message": "Bad credentials", "status": "401"}, 401)
            raise web.Finish()
        if grant["permissions"].get(permission) != "write":
            message = "Resource not accessible by personal access token"
            self.write_json({"message": message, "status": "403"}, 403)
            raise web.Finish()
        return grant["login"]

    def body(self) -> dict:
        return json.loads(self.request.body or b"{}")


class RefHandler(RepositoryHandler):
    def get(self, owner: str, name: str, branch: str):
        repository = self.repository(owner, name)
        if branch not in repository.branches:
            self.not_found()
        sha = repository.branches[branch]
        self.write_json({"ref": f"refs/heads/{branch}", "object": {"sha": sha, "type": "commit"}})


class RefsHandler(RepositoryHandler):
    def post(self, owner: str, name: str):
        repository = self.repository(owner, name)
        self.require("contents")
        body = self.body()
        branch = str(body.get("ref", "")).removeprefix("refs/heads/")
        if branch in repository.branches:
            self.unprocessable("Reference already exists")
        if body.get("sha") not in repository.commits:
            self.unprocessable("Object does not exist")
        repository.branches[branch] = body["sha"]
        self.write_json({"ref": f"refs/heads/{branch}", "object": {"sha": body["sha"]}}, 201)


class ContentsHandler(RepositoryHandler):
    def get(self, owner: str, name: str, path: str):
        repository = self.repository(owner, name)
        branch = self.get_argument("ref", repository.default_branch)
        files = repository.commits.get(repository.branches.get(branch, ""), {})
        if path not in files:
            self.not_found()
        text = files[path]
        content = base64.b64encode(text.encode()).decode()
        self.write_json({"type": "file", "path": path, "encoding": "base64",
                         "content": content, "sha": blob_sha(text)})  # fmt: skip

    def put(self, owner: str, name: str, path: str):
        repository = self.repository(owner, name)
        self.require("contents")
        body = self.body()
        branch = body.get("branch", repository.default_branch)
        if branch not in repository.branches:
            self.not_found()
        files = repository.commits[repository.branches[branch]]
        if path in files and body.get("sha") != blob_sha(files[path]):
            if "sha" not in body:
                self.unprocessable('Invalid request.\n\n"sha" wasn\'t supplied.')
            self.write_json({"message": f"{path} does not match {body['sha']}"}, 409)
            return
        text = base64.b64decode(body["content"]).decode()
        sha = repository.commit(branch, path, text)
        self.write_json({"content": {"path": path, "sha": blob_sha(text)},
                         "commit": {"sha": sha, "message": body.get("message", "")}},
                        200 if path in files else 201)  # fmt: skip


class PullsHandler(RepositoryHandler):
    def get(self, owner: str, name: str):
        repository = self.repository(owner, name)
        head = self.get_argument("head", "")
        pulls = [p for p in repository.pulls if not head or head == p["head"]["label"]]
        self.write_json(pulls)

    def post(self, owner: str, name: str):
        repository = self.repository(owner, name)
        login = self.require("pull_requests")
        body = self.body()
        head, base = body.get("head", ""), body.get("base", repository.default_branch)
        label = head if ":" in head else f"{owner}:{head}"
        branch = label.split(":", 1)[1]
        errors = []
        if branch not in repository.branches:
            errors.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
        elif any(p["head"]["label"] == label and p["state"] == "open" for p in repository.pulls):
            errors.append({"resource": "PullRequest", "code": "custom",
                           "message": f"A pull request already exists for {label}."})  # fmt: skip
        elif repository.branches[branch] == repository.branches.get(base):
            errors.append({"resource": "PullRequest", "code": "custom",
                           "message": f"No commits between {base} and {branch}"})  # fmt: skip
        if errors:
            self.write_json({"message": "Validation Failed", "errors": errors, "status": "422"},
                            422)  # fmt: skip
            return
        number = len(repository.pulls) + 1
        pull = {
            "number": number, "state": "open", "title": body.get("title", ""),
            "body": body.get("body", ""), "user": {"login": login},
            "head": {"ref": branch, "label": label, "sha": repository.branches[branch]},
            "base": {"ref": base},
            "html_url": f"{self.request.protocol}://{self.request.host}/{owner}/{name}/pull/{number}",
        }  # fmt: skip
        repository.pulls.append(pull)
        self.write_json(pull, 201)


class ControlRepositoryHandler(web.RequestHandler):
    """Tests make a repository: PUT /_standin/repos/<owner>/<name> {"files": {path: text}}."""

    def put(self, owner: str, name: str):
        files = json.loads(self.request.body)["files"]
        self.settings["world"].repositories[f"{owner}/{name}"] = Repository.with_files(files)
        self.set_status(204)


class ControlGrantHandler(web.RequestHandler):
    """Tests make a token for the repository API: PUT /_standin/grants/<token>
    {"login": "bot", "permissions": {"contents": "write", "pull_requests": "write"}}."""

    def put(self, token: str):
        self.settings["world"].grants[token] = json.loads(self.request.body)
        self.set_status(204)


def make_app(world: World) -> web.Application:
    name = r"([A-Za-z0-9_.-]+)"
    return web.Application(
        [
            (r"/login/oauth/authorize", AuthorizeHandler),
            (r"/login/oauth/access_token", TokenHandler),
            (r"/api/v3/user", UserHandler),
            (r"/api/v3/user/emails", EmailsHandler),
            (r"/api/v3/user/teams", TeamsHandler),
            (r"/api/v3/user/orgs", OrgsHandler),
            (rf"/api/v3/orgs/{name}/members/{name}", OrgMemberHandler),
            (rf"/api/v3/orgs/{name}/teams/{name}/members/{name}", TeamMemberHandler),
            (rf"/api/v3/repos/{name}/{name}/git/ref/heads/(.+)", RefHandler),
            (rf"/api/v3/repos/{name}/{name}/git/refs", RefsHandler),
            (rf"/api/v3/repos/{name}/{name}/contents/(.+)", ContentsHandler),
            (rf"/api/v3/repos/{name}/{name}/pulls", PullsHandler),
            (rf"/_standin/repos/{name}/{name}", ControlRepositoryHandler),
            (rf"/_standin/grants/{name}", ControlGrantHandler),
            (rf"/_standin/teams/{name}/{name}/{name}", ControlTeamHandler),
            (rf"/_standin/faults/{name}", ControlFaultHandler),
        ],
        world=world,
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
    make_app(world).listen(args.port, address="127.0.0.1")
    log.warning("%s listening on http://127.0.0.1:%s", BANNER, args.port)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fixture", required=True, help="users, organizations and teams (YAML)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    args = parser.parse_args(argv)
    # Every line says it comes from the stand-in, so nobody reading a log
    # mixed with the hub's mistakes it for GitHub.
    logging.basicConfig(level=logging.INFO, format=f"[%(levelname)s {BANNER}] %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
