"""Course images built in the courses' own repositories, and their new tags proposed here.

MIT Open Learning's pipeline: each course repository builds its image and the
new tag comes to this registry (deploy/courses/) as a pull request, which CI
checks and a person merges. The template a course repository copies
(deploy/deployments/coursehub/image/build-image.yaml) runs repo2docker and
these steps; the weekly rebuild (.github/workflows/rebuild-images.yml) runs
`rebuild` for every course of the registry, for the base images' security updates.

    python -m coursehub_tools.lifecycle.course_image hooks ../course      # before the build
    python -m coursehub_tools.lifecycle.course_image exists IMAGE         # after the push
    python -m coursehub_tools.lifecycle.course_image propose --course data-science-101 --image IMAGE
    python -m coursehub_tools.lifecycle.course_image rebuild      # every course, one pull request

The pull request goes through GitHub's REST API ($GITHUB_API_URL, as Actions
sets it) to $COURSEHUB_REGISTRY_REPO (owner/name) with $GH_TOKEN, a token with
contents and pull-requests write on that repository.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import requests

from coursehub_tools.config import registry_check
from coursehub_tools.config.deployconfig import load
from coursehub_tools.config.yamlfiles import ROOT, read_yaml, relative
from coursehub_tools.lifecycle.course_lifecycle import _yaml, course_file

HOOKS = ("as-root.sh", "as-user.sh", "run-admin-hook.sh")
COPY_HOOKS = re.compile(r"^COPY\s+(--\S+\s+)*hooks/?\s+(\S+?)/?\s*$", re.MULTILINE)
TIMEOUT = 30


class ImageError(Exception):
    """A step of the pipeline failed; the message says which and why."""


# The hooks check ------------------------------------------------------------------------


def hook_problems(context: Path, hooks_path: str) -> list[str]:
    """Why the image built from `context` would not run the start-up hooks safely.

    The hub runs <hooks_path>/as-root.sh as root before every server, so the
    Dockerfile must copy the repository's hooks/ there, make them root's, and
    leave the image as a user that is not root (who then cannot change them).
    """
    found = []
    for hook in HOOKS:
        path = context / "hooks" / hook
        if not path.is_file():
            found.append(f"hooks/{hook}: missing (the hub runs {hooks_path}/{hook})")
            continue
        parsed = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
        if parsed.returncode != 0:
            found.append(f"hooks/{hook}: not valid sh: {parsed.stderr.strip()}")
    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file():
        return [*found, "Dockerfile: missing (the template's builds the course image)"]
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    copies = [m for m in COPY_HOOKS.finditer(text) if m.group(2) == hooks_path]
    if not copies:
        found.append(f"Dockerfile: no `COPY hooks/ {hooks_path}/`, where the hub runs them")
        return found
    after = text[copies[-1].end() :]
    owned = re.findall(r"chown\s+-R\s+root:root\s+(\S+)", after)
    if not any((hooks_path + "/").startswith(path.rstrip("/") + "/") for path in owned):
        found.append(f"Dockerfile: {hooks_path} is not made root's (chown -R root:root)")
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    if not users or users[-1] in ("root", "0"):
        found.append("Dockerfile: the image ends as root; end with USER ${NB_UID}")
    return found


# The pull request ------------------------------------------------------------------------


@dataclass(frozen=True)
class GitHub:
    """The registry's repository through GitHub's REST API."""

    api: str
    repository: str
    token: str

    @classmethod
    def from_environment(cls) -> GitHub:
        missing = [n for n in ("COURSEHUB_REGISTRY_REPO", "GH_TOKEN") if not os.environ.get(n)]
        if missing:
            raise ImageError(
                f"{' and '.join(missing)} not set: the registry's owner/name and a "
                "token with contents and pull-requests write on it"
            )
        api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
        return cls(api.rstrip("/"), os.environ["COURSEHUB_REGISTRY_REPO"], os.environ["GH_TOKEN"])

    def call(self, method: str, path: str, what: str, **kwargs) -> dict:
        url = f"{self.api}/repos/{self.repository}/{path}"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/vnd.github+json"}
        answer = requests.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)
        if answer.status_code >= 400:
            body = answer.json() if answer.content else {}
            reasons = [e.get("message") or e.get("code", "") for e in body.get("errors", [])]
            message = "; ".join([body.get("message", answer.reason), *reasons])
            raise ImageError(f"GitHub refused to {what}: {answer.status_code} {message}")
        return answer.json()


def with_image(text: str, image: str) -> str:
    """The course file's text with `image` replaced, comments and order kept."""
    yaml = _yaml()
    course = yaml.load(text)
    course["image"] = image
    out = io.StringIO()
    yaml.dump(course, out)
    return out.getvalue()


def propose(github: GitHub, images: dict[str, str], branch: str, title: str, body: str) -> str:
    """A branch off the default one with each course's new image, and a pull request of it."""
    base = "main"
    head = github.call("GET", f"git/ref/heads/{base}", f"read branch {base}")["object"]["sha"]
    github.call(
        "POST",
        "git/refs",
        f"create branch {branch}",
        json={"ref": f"refs/heads/{branch}", "sha": head},
    )
    for slug, image in images.items():
        path = relative(course_file(slug), ROOT)
        current = github.call("GET", f"contents/{path}", f"read {path}", params={"ref": branch})
        text = with_image(base64.b64decode(current["content"]).decode(), image)
        github.call(
            "PUT",
            f"contents/{path}",
            f"write {path}",
            json={
                "message": f"{slug}: image {image}",
                "branch": branch,
                "sha": current["sha"],
                "content": base64.b64encode(text.encode()).decode(),
            },
        )
    pull = github.call(
        "POST",
        "pulls",
        "open the pull request",
        json={"title": title, "head": branch, "base": base, "body": body},
    )
    return pull["html_url"]


# The weekly rebuild ----------------------------------------------------------------------


def source_repository(image: str, git_base: str) -> str:
    """Where a course image is built from: <git base>/<owner>/<name> of its repository path,
    as the template pushes ghcr.io/<owner>/<name> from github.com/<owner>/<name>."""
    _host, repository, _tag = registry_check.split(image)
    owner, name = repository.split("/")[-2:]
    return f"{git_base.rstrip('/')}/{owner}/{name}"


def run(command: list[str], what: str, cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()[-1]
        raise ImageError(f"{what} failed: {last}")
    return done.stdout.strip()


def rebuild_one(image: str, git_base: str, day: date, hooks_path: str) -> str:
    """Clone the course's repository, check its hooks, build, push, and ask the registry."""
    name = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    with tempfile.TemporaryDirectory(prefix="coursehub-rebuild-") as tmp:
        source = Path(tmp) / "course"
        repository = source_repository(image, git_base)
        run(
            ["git", "clone", "--quiet", "--depth", "1", repository, str(source)],
            f"git clone {repository}",
        )
        problems = hook_problems(source, hooks_path)
        if problems:
            raise ImageError("the hooks check failed: " + "; ".join(problems))
        commit = run(["git", "rev-parse", "--short=7", "HEAD"], "git rev-parse", source)
        new = f"{name}:{day:%Y.%m.%d}-{commit}"
        run(
            [
                "repo2docker",
                "--no-run",
                "--user-id",
                "1000",
                "--user-name",
                "jovyan",
                "--image-name",
                new,
                str(source),
            ],
            "repo2docker",
        )
    run(["docker", "push", new], f"docker push {new}")
    if not registry_check.exists(new):
        raise ImageError(f"{new} was pushed but its registry does not have it")
    return new


def rebuild(courses: dict[str, str], git_base: str, day: date, hooks_path: str):
    """Every course's new image, and why the others failed: ({slug: image}, {slug: why})."""
    built, failed = {}, {}
    for slug, image in sorted(courses.items()):
        try:
            built[slug] = rebuild_one(image, git_base, day, hooks_path)
            print(f"{slug}: {built[slug]}")
        except (ImageError, requests.RequestException) as err:
            failed[slug] = str(err)
            print(f"warning: {slug}: not rebuilt: {err}", file=sys.stderr)
    return built, failed


def rebuild_body(day: date, built: dict[str, str], failed: dict[str, str]) -> str:
    lines = [
        f"The weekly rebuild of {day:%Y-%m-%d}: each course image built again from its "
        "repository, for its base image's security updates. CI checks this change; "
        "merging it deploys.",
        "",
    ]
    lines += [f"- {slug}: `{image}`" for slug, image in built.items()]
    if failed:
        lines += ["", "Not rebuilt (their images stay as they are):"]
        lines += [f"- {slug}: {why}" for slug, why in failed.items()]
    return "\n".join(lines)


# The command -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    hooks = verbs.add_parser("hooks", help="the start-up hooks in a course's build context")
    hooks.add_argument("context", type=Path)
    exists = verbs.add_parser("exists", help="the image's tag, asked of its registry")
    exists.add_argument("image")
    proposal = verbs.add_parser("propose", help="a pull request naming a course's new image")
    proposal.add_argument("--course", required=True)
    proposal.add_argument("--image", required=True)
    weekly = verbs.add_parser("rebuild", help="every course image again, one pull request")
    weekly.add_argument("--git-base", default="https://github.com")
    weekly.add_argument(
        "--courses",
        type=Path,
        default=ROOT / "deploy/courses",
        help="the registry's folder of course files (deploy/courses)",
    )
    weekly.add_argument(
        "--date",
        type=date.fromisoformat,
        default=datetime.now(UTC).date(),
        help="the day in the tags (today)",
    )
    args = parser.parse_args(argv)
    hooks_path = load("prod").values["custom"]["startupHooks"]["path"]
    try:
        return VERBS[args.verb](args, hooks_path)
    except (ImageError, requests.RequestException) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _hooks(args, hooks_path: str) -> int:
    problems = hook_problems(args.context, hooks_path)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"{', '.join(HOOKS)}: valid sh, copied to {hooks_path} and made root's; "
            "the image ends as its user"
        )
    return 1 if problems else 0


def _exists(args, _hooks_path: str) -> int:
    if not registry_check.exists(args.image):
        print(f"error: {args.image}: its registry does not have it", file=sys.stderr)
        return 1
    print(f"{args.image}: in its registry")
    return 0


def _propose(args, _hooks_path: str) -> int:
    courses = load("prod").values["custom"]["courses"]
    if args.course not in courses:
        raise ImageError(f"--course {args.course!r} is not in the registry: {', '.join(courses)}")
    tag = args.image.rsplit(":", 1)[-1]
    url = propose(
        GitHub.from_environment(),
        {args.course: args.image},
        f"images/{args.course}-{tag}",
        f"{args.course}: image {tag}",
        f"A new image for {args.course}, built and checked by its repository's "
        f"pipeline: `{args.image}`. CI checks this change; merging it deploys.",
    )
    print(f"proposed {args.image} for {args.course}: {url}")
    return 0


def _rebuild(args, hooks_path: str) -> int:
    files = sorted(args.courses.glob("*.yaml"))
    courses = {c["slug"]: c["image"] for c in (read_yaml(f, ROOT) for f in files)}
    built, failed = rebuild(courses, args.git_base, args.date, hooks_path)
    if built:
        url = propose(
            GitHub.from_environment(),
            built,
            f"images/weekly-{args.date:%Y-%m-%d}",
            f"Course images: the weekly rebuild of {args.date:%Y-%m-%d}",
            rebuild_body(args.date, built, failed),
        )
        print(f"proposed: {url}")
    return 1 if failed else 0


VERBS = {"hooks": _hooks, "exists": _exists, "propose": _propose, "rebuild": _rebuild}

if __name__ == "__main__":
    sys.exit(main())
