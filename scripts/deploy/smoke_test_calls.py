"""The hub API calls the cluster smoke test makes, read from the test itself, and the scopes
JupyterHub wants for each.

deploy.yml's smoke test is `pytest -m cluster` (tests/deploy/test_cluster.py): it sends the
cluster-tests service's token to the hub's REST API. Which calls it makes is read from that
file (every `requests.<method>(f"{hub...}/...", headers=...)`), so a call added to the test
is checked too; which scope each needs is read from JupyterHub's own API handlers (the
`needs_scope` decorator on the handler the path routes to), so the check is the hub's own.
`missing(calls, scopes)` names every call the role's scopes would answer with 403.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

from coursehub_tools.config.yamlfiles import ROOT, ConfigError

SMOKE_TEST = Path("tests") / "deploy" / "test_cluster.py"
HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head")
# The names tests/deploy/test_cluster.py gives the hub's API base URL ("<public url>/hub/api").
API_BASES = ("hub", "hub_api")
# A stand-in for each {placeholder} of a path, for routing it through JupyterHub's patterns.
SAMPLE = "x"


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # below /hub/api, placeholders as <name>
    line: int

    def __str__(self) -> str:
        return f"{self.method} /hub/api{self.path}"


def _path(url: ast.JoinedStr) -> str | None:
    """The path after the API base of an f-string URL, or None if it is not the hub's API."""
    first, *rest = url.values
    if not (isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Name)):
        return None
    if first.value.id not in API_BASES:
        return None
    parts = [
        part.value if isinstance(part, ast.Constant) else f"<{ast.unparse(part.value)}>"
        for part in rest
    ]
    return "".join(parts)


def calls(root: Path = ROOT) -> list[Call]:
    """Every hub API call the smoke test sends with its token, in the file's order."""
    tree = ast.parse((root / SMOKE_TEST).read_text())
    found = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and ast.unparse(node.func.value) == "requests"
            and node.func.attr in HTTP_METHODS
            and node.args
            and isinstance(node.args[0], ast.JoinedStr)
            and any(keyword.arg == "headers" for keyword in node.keywords)
        ):
            continue
        path = _path(node.args[0])
        if path is not None:
            found.append(Call(node.func.attr.upper(), path, node.lineno))
    return sorted(set(found), key=lambda call: call.line)


def required_scopes(call: Call) -> tuple[str, ...]:
    """The scopes JupyterHub's handler for `call` accepts (any one of them will do)."""
    from jupyterhub.apihandlers import default_handlers

    path = "/api" + re.sub(r"<[^>]+>", SAMPLE, call.path)
    handlers = [handler for pattern, handler in default_handlers if re.fullmatch(pattern, path)]
    if not handlers:
        raise ConfigError(f"{SMOKE_TEST}:{call.line}: {call}: no JupyterHub API handler has it")
    method = getattr(handlers[0], call.method.lower(), None)
    scopes = inspect.getclosurevars(method).nonlocals.get("scopes") if method else None
    if not scopes:
        raise ConfigError(
            f"{SMOKE_TEST}:{call.line}: {call}: {handlers[0].__name__} declares no scope for it"
        )
    return tuple(scopes)


def missing(found: list[Call], scopes: list[str]) -> list[str]:
    """One line per call that a token with `scopes` would be refused (403)."""
    from jupyterhub.scopes import _expand_scope

    held = {implied for scope in scopes for implied in _expand_scope(scope)}
    return [
        f"{call} (tests/deploy/test_cluster.py:{call.line}) needs one of {', '.join(needed)}"
        for call in found
        if not held & set(needed := required_scopes(call))
    ]
