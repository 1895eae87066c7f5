"""The few calls of GitHub's REST API that propose a change as a pull request.

A branch from the base branch's head, a file written on it, a pull request from it;
and reading a file and the pull requests back. GitHub's own failures come back as
GitHubError with its status and message (422: the branch or pull request exists;
403: the token may not write; 404: not there).
ref: https://docs.github.com/en/rest/git/refs, /rest/repos/contents, /rest/pulls/pulls
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class GitHubError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"GitHub answered {status}: {message}")
        self.status, self.message = status, message


@dataclass
class GitHubRepository:
    api_url: str  # https://api.github.com, or a GitHub Enterprise server's /api/v3
    full_name: str  # owner/name
    token: str

    async def _call(self, method: str, path: str, body: dict | None = None, **query) -> object:
        url = f"{self.api_url.rstrip('/')}/repos/{self.full_name}/{path}"
        if query:
            url += "?" + urlencode(query)
        request = HTTPRequest(
            url,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            body=None if body is None else json.dumps(body),
            request_timeout=30,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as err:
            message = err.message or ""
            if err.response is not None and err.response.body:
                with contextlib.suppress(ValueError, AttributeError):
                    message = json.loads(err.response.body).get("message", message)
            raise GitHubError(err.code, message) from None
        return json.loads(response.body) if response.body else None

    async def read(self, path: str, ref: str) -> tuple[str, str] | None:
        """A file's text and blob sha on branch `ref`; None if it is not there."""
        try:
            found = await self._call("GET", f"contents/{quote(path)}", ref=ref)
        except GitHubError as err:
            if err.status == 404:
                return None
            raise
        return base64.b64decode(found["content"]).decode(), found["sha"]

    async def branch_from(self, base: str, branch: str) -> None:
        head = await self._call("GET", f"git/ref/heads/{quote(base)}")
        await self._call(
            "POST", "git/refs", {"ref": f"refs/heads/{branch}", "sha": head["object"]["sha"]}
        )

    async def write(self, branch: str, path: str, text: str, message: str) -> None:
        body = {
            "message": message,
            "content": base64.b64encode(text.encode()).decode(),
            "branch": branch,
        }
        await self._call("PUT", f"contents/{quote(path)}", body)

    async def open_pull(self, head: str, base: str, title: str, body: str) -> dict:
        return await self._call(
            "POST", "pulls", {"head": head, "base": base, "title": title, "body": body}
        )

    async def pulls(self) -> list[dict]:
        """Every pull request, open and closed, newest first (one page of 100: enough for
        the requests of a term; older ones are on GitHub)."""
        return await self._call("GET", "pulls", state="all", per_page=100)
