"""The GitHub stand-in's repositories: the REST calls that propose a change as a pull request.

A branch from another (git refs), a file written on it (contents), a pull request
opened, listed, merged or closed (pulls), answered as GitHub's REST API answers
them, failures included: 422 when the branch or the pull request exists already,
403 when the token's user may not write to the repository or a fine-grained token
lacks the permission the call needs, 404 for what is not there, 409 when a file
changed since its sha was read. It is NOT GitHub: a repository here is files in
memory over a folder of this machine (its seed) or over files a test gave it, and
a commit is only a new sha.
ref: https://docs.github.com/en/rest/git/refs, /rest/repos/contents, /rest/pulls/pulls
ref: https://docs.github.com/en/rest/authentication/permissions-required-for-fine-grained-personal-access-tokens
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tornado import web

# What GitHub answers a token whose user may read a repository and not write to it.
NO_WRITE = "Resource not accessible by personal access token"
DOCS = "https://docs.github.com/rest"


def blob_sha(text: str) -> str:
    """A file's sha as git names its blob, so a client can compare it with one it read."""
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repository:
    """Branches of files over a seed folder: a branch keeps only the files written on it.

    With no seed folder, the default branch's files are all the repository has.
    """

    full_name: str
    seed: Path | None
    default_branch: str
    writers: list[str]
    branches: dict[str, dict[str, str]] = field(default_factory=dict)
    commits: dict[str, int] = field(default_factory=dict)
    pulls: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.branches.setdefault(self.default_branch, {})
        self.commits.setdefault(self.default_branch, 0)

    def head(self, branch: str) -> str:
        return hashlib.sha1(
            f"{self.full_name}@{branch}#{self.commits[branch]}".encode()
        ).hexdigest()

    def read(self, branch: str, path: str) -> str | None:
        if path in self.branches[branch]:
            return self.branches[branch][path]
        if self.seed is None:
            return None
        file = self.seed / path
        resolved = file.resolve()
        if self.seed.resolve() not in resolved.parents or not resolved.is_file():
            return None
        return file.read_text()

    def write(self, branch: str, path: str, text: str) -> None:
        self.branches[branch][path] = text
        self.commits[branch] += 1


class RepositoryHandler(web.RequestHandler):
    """Answers as GitHub's API: JSON, and a message with a documentation link on failure."""

    def answer(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def fail(self, status: int, message: str) -> None:
        self.answer({"message": message, "documentation_url": DOCS, "status": str(status)}, status)
        raise web.Finish()

    def login(self) -> str:
        auth = self.request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        login = (
            self.settings["world"].tokens.get(token)
            if scheme.lower() in ("token", "bearer")
            else None
        )
        if login is None:
            self.fail(401, "Bad credentials")
        return login

    def repository(self, owner: str, name: str) -> Repository:
        self.login()
        repository = self.settings["world"].repositories.get(f"{owner}/{name}")
        if repository is None:
            self.fail(404, "Not Found")
        return repository

    def writable(self, owner: str, name: str, permission: str) -> Repository:
        """The repository, if the token's user may write to it and the token may `permission`.

        A fine-grained token says per permission what it may; a classic one may all its user may.
        """
        repository = self.repository(owner, name)
        if self.login() not in repository.writers:
            self.fail(403, NO_WRITE)
        token = self.request.headers["Authorization"].partition(" ")[2]
        granted = self.settings["world"].fine_grained.get(token)
        if granted is not None and granted.get(permission) != "write":
            self.fail(403, NO_WRITE)
        return repository

    def body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError:
            self.fail(400, "Problems parsing JSON")
        return body

    def branch(self, repository: Repository, name: str, status: int = 404) -> str:
        if name not in repository.branches:
            self.fail(
                status,
                "Branch not found" if status == 404 else f"No commit found for the ref {name}",
            )
        return name


class RefHandler(RepositoryHandler):
    """GET /repos/{owner}/{repo}/git/ref/heads/{branch}: the commit a branch is at."""

    def get(self, owner: str, name: str, branch: str) -> None:
        repository = self.repository(owner, name)
        if branch not in repository.branches:
            self.fail(404, "Not Found")
        self.answer(ref_model(repository, branch))


def ref_model(repository: Repository, branch: str) -> dict:
    return {
        "ref": f"refs/heads/{branch}",
        "object": {"sha": repository.head(branch), "type": "commit"},
    }


class RefsHandler(RepositoryHandler):
    """POST /repos/{owner}/{repo}/git/refs {"ref": "refs/heads/<new>", "sha": <a branch's head>}."""

    def post(self, owner: str, name: str) -> None:
        repository = self.writable(owner, name, "contents")
        body = self.body()
        ref, sha = str(body.get("ref", "")), body.get("sha")
        if not ref.startswith("refs/heads/") or ref.count("/") < 2:
            self.fail(422, "Reference name is invalid")
        branch = ref.removeprefix("refs/heads/")
        if branch in repository.branches:
            self.fail(422, "Reference already exists")
        source = next((b for b in repository.branches if repository.head(b) == sha), None)
        if source is None:
            self.fail(422, "Object does not exist")
        repository.branches[branch] = dict(repository.branches[source])
        repository.commits[branch] = repository.commits[source]
        self.answer(ref_model(repository, branch), 201)


class ContentsHandler(RepositoryHandler):
    """GET or PUT /repos/{owner}/{repo}/contents/{path} (?ref= / "branch": which branch)."""

    def get(self, owner: str, name: str, path: str) -> None:
        repository = self.repository(owner, name)
        branch = self.branch(repository, self.get_argument("ref", repository.default_branch))
        text = repository.read(branch, path)
        if text is None:
            self.fail(404, "Not Found")
        self.answer(content_model(path, text))

    def put(self, owner: str, name: str, path: str) -> None:
        repository = self.writable(owner, name, "contents")
        body = self.body()
        branch = self.branch(repository, body.get("branch") or repository.default_branch)
        if not body.get("message") or "content" not in body:
            self.fail(422, 'Invalid request.\n\n"message" and "content" are required.')
        existing = repository.read(branch, path)
        if existing is not None and "sha" not in body:
            self.fail(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        if existing is not None and body["sha"] != blob_sha(existing):
            self.fail(409, f"{path} does not match {body['sha']}")
        text = base64.b64decode(body["content"]).decode()
        repository.write(branch, path, text)
        model = {"content": content_model(path, text), "commit": {"sha": repository.head(branch)}}
        self.answer(model, 201 if existing is None else 200)


def content_model(path: str, text: str) -> dict:
    return {
        "type": "file",
        "path": path,
        "name": path.rsplit("/", 1)[-1],
        "encoding": "base64",
        "content": base64.b64encode(text.encode()).decode(),
        "sha": blob_sha(text),
    }


class PullsHandler(RepositoryHandler):
    """GET (?state=open|closed|all, ?head=owner:branch) or POST /repos/{owner}/{repo}/pulls."""

    def get(self, owner: str, name: str) -> None:
        repository = self.repository(owner, name)
        state = self.get_argument("state", "open")
        head = self.get_argument("head", "")
        pulls = [
            pull
            for pull in repository.pulls
            if state in ("all", pull["state"])
            and (not head or head == f"{owner}:{pull['head']['ref']}")
        ]
        self.answer(sorted(pulls, key=lambda pull: -pull["number"]))

    def post(self, owner: str, name: str) -> None:
        repository = self.writable(owner, name, "pull_requests")
        body = self.body()
        head, base = str(body.get("head", "")), str(body.get("base", ""))
        if not body.get("title"):
            self.fail(422, "Validation Failed: title is missing")
        for ref in (head, base):
            self.branch(repository, ref, status=422)
        if any(p["state"] == "open" and p["head"]["ref"] == head for p in repository.pulls):
            self.fail(422, f"Validation Failed: A pull request already exists for {owner}:{head}.")
        number = len(repository.pulls) + 1
        pull = {
            "number": number,
            "html_url": f"{self.settings['public_url']}/{repository.full_name}/pull/{number}",
            "state": "open",
            "merged": False,
            "title": body["title"],
            "body": body.get("body") or "",
            "user": {"login": self.login()},
            "head": {"ref": head},
            "base": {"ref": base},
        }
        repository.pulls.append(pull)
        self.answer(pull, 201)


class PullHandler(RepositoryHandler):
    """GET or PATCH ({"state": "closed"}) /repos/{owner}/{repo}/pulls/{number}."""

    def pull(self, repository: Repository, number: str) -> dict:
        index = int(number) - 1
        if not 0 <= index < len(repository.pulls):
            self.fail(404, "Not Found")
        return repository.pulls[index]

    def get(self, owner: str, name: str, number: str) -> None:
        self.answer(self.pull(self.repository(owner, name), number))

    def patch(self, owner: str, name: str, number: str) -> None:
        pull = self.pull(self.writable(owner, name, "pull_requests"), number)
        state = self.body().get("state", pull["state"])
        if state not in ("open", "closed"):
            self.fail(422, "Validation Failed: state must be open or closed")
        if not pull["merged"]:
            pull["state"] = state
        self.answer(pull)


class MergeHandler(PullHandler):
    """PUT /repos/{owner}/{repo}/pulls/{number}/merge: the head's files onto the base."""

    def put(self, owner: str, name: str, number: str) -> None:
        # ref: merging writes the base branch, so GitHub asks for contents, not pull_requests.
        repository = self.writable(owner, name, "contents")
        pull = self.pull(repository, number)
        if pull["state"] != "open":
            self.fail(405, "Pull Request is not mergeable")
        base, head = pull["base"]["ref"], pull["head"]["ref"]
        for path, text in repository.branches[head].items():
            repository.write(base, path, text)
        pull.update(state="closed", merged=True)
        self.answer(
            {
                "sha": repository.head(base),
                "merged": True,
                "message": "Pull Request successfully merged",
            }
        )


class ControlRepositoryHandler(web.RequestHandler):
    """Tests make a repository of their own files, no seed folder under it:
    PUT /_standin/repos/<owner>/<name> {"files": {path: text}, "writers": [login, ...]}."""

    def put(self, owner: str, name: str) -> None:
        spec = json.loads(self.request.body)
        full_name = f"{owner}/{name}"
        branch = spec.get("defaultBranch", "main")
        repository = Repository(full_name, None, branch, spec["writers"], {branch: spec["files"]})
        self.settings["world"].repositories[full_name] = repository
        self.set_status(204)


def routes() -> list[tuple[str, type]]:
    repo = r"/api/v3/repos/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)"
    return [
        (r"/_standin/repos/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)", ControlRepositoryHandler),
        (rf"{repo}/git/ref/heads/(.+)", RefHandler),
        (rf"{repo}/git/refs", RefsHandler),
        (rf"{repo}/contents/(.+)", ContentsHandler),
        (rf"{repo}/pulls", PullsHandler),
        (rf"{repo}/pulls/([0-9]+)", PullHandler),
        (rf"{repo}/pulls/([0-9]+)/merge", MergeHandler),
    ]


def repositories_from(fixture: dict, root: Path) -> dict[str, Repository]:
    """The fixture's `repositories`, each over its `seed` folder (relative to `root`)."""
    return {
        full_name: Repository(
            full_name, root / spec.get("seed", "."), spec["defaultBranch"], spec["writers"]
        )
        for full_name, spec in (fixture.get("repositories") or {}).items()
    }
