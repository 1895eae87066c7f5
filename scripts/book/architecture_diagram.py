"""The architecture drawn from a deployment's merged values, as Graphviz's dot language.

Every box and label comes from the values (and the cluster spec), so the
picture in the chapter "Architecture" changes when the configuration does; the
login flow's from the values and the hub-side code that reads them, the course
lifecycle's from scripts/lifecycle/course_lifecycle.py's table of moves.
`dot` (Debian's graphviz, installed by `nox -s book`) renders it offline.

    coursehub diagram prod > prod.svg
    coursehub diagram prod --picture login > login.svg
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import yaml

from coursehub.enrollment import SERVICE_NAME as ENROLLMENT_SERVICE
from coursehub.github import authenticator_config
from coursehub.roles import instructor_roles
from coursehub_tools.config.deployconfig import Layer, load
from coursehub_tools.config.yamlfiles import ROOT, ConfigError, read_yaml
from coursehub_tools.lifecycle import course_lifecycle

# Shared by every picture. Edge labels at 10 pt still read at 8 px in a picture
# shrunk to the page's width, if the picture is at most 900 pt wide.
HEADER = (
    '  graph [fontname="sans-serif"];',
    '  node [shape=box, style="rounded", fontname="sans-serif", fontsize=11];',
    '  edge [fontname="sans-serif", fontsize=10];',
)
# dot reads the two characters \n in a label as a line break.
LINE_BREAK = "\\n"
LABEL_WIDTH = 40
NUMBER_AND_UNIT = re.compile(r"(\d) (?=\w)")
# An edge's label sits beside the edge, widening its row: shorter lines.
EDGE_LABEL_WIDTH = 24


def _quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def dot_source(deployment: str) -> str:
    merged = load(deployment)
    values = merged.values
    hosts = values["proxy"]["https"].get("hosts") or ["the hub's address"]
    courses = values["custom"]["courses"]
    cull = values["cull"]
    placeholders = values["scheduling"]["userPlaceholder"]
    storage = values["singleuser"]["storage"]
    shared = values["custom"]["sharedData"]
    organization = values["custom"]["github"]["organization"]
    culling = LINE_BREAK.join(
        [f"idle culler: every {cull['every']} s,", f"idle after {cull['timeout'] // 60} min"]
    )
    home = f"home: {storage['type']} {storage.get('capacity', '')}".strip()
    pods = [f"pod-{slug}" for slug in sorted(courses)]
    lines = [
        # Top to bottom, the courses' servers one under another: a page is
        # narrower than the picture is long (coursehub book-check measures it).
        "digraph coursehub {",
        *HEADER,
        _node("browser", "student or instructor (browser)", shape="oval"),
        _node("github", f"GitHub (organization {organization})"),
        _node("proxy", "proxy: " + ", ".join(hosts)),
        _node("hub", f"hub (database: {values['hub']['db']['type']})"),
        _node("culler", culling),
        '  subgraph cluster_user { label="user node pool"; style=dashed;',
    ]
    for slug, pod in zip(sorted(courses), pods, strict=True):
        lines.append(_node(pod, f"{slug} server:\\n{courses[slug]['image']}"))
    lines.append(_node("prepuller", f"pre-puller: {len(courses)} course images"))
    if placeholders.get("enabled"):
        lines += [
            _node("placeholders", f"{placeholders['replicas']} placeholders", style="dashed"),
            _edge("prepuller", "placeholders", "", style="invis"),
        ]
    # Invisible edges stack what a row would hold side by side.
    lines += [_edge(above, below, "", style="invis") for above, below in pairwise(pods)]
    lines += [
        "  }",
        _node("home", home, shape="cylinder"),
        _node("shared", f"shared data at {shared['mountPath']}", shape="cylinder"),
        _edge("browser", "proxy", "HTTPS"),
        _edge("proxy", "hub", "/hub/"),
        _edge("hub", "github", "OAuth, teams"),
        _edge("culler", "hub", "REST API"),
        _edge("hub", "proxy", "routes", style="dashed"),
    ]
    for pod in pods:
        lines += [
            _edge("proxy", pod, "/user/<name>/"),
            _edge("hub", pod, "starts", style="dashed"),
            _edge(pod, "home", ""),
            _edge(pod, "shared", ""),
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def pipeline_source(workflows: Path = ROOT / ".github" / "workflows") -> str:
    """The workflows' jobs as boxes, one cluster per workflow, with `needs` as arrows and
    a workflow started by another's completion joined to that workflow's jobs."""
    lines = [
        "digraph pipeline {",
        "  rankdir=LR;",
        *HEADER,
    ]
    edges, names = [], {}
    for path in sorted(workflows.glob("*.yml")):
        workflow = yaml.safe_load(path.read_text())
        name = workflow["name"]
        trigger = workflow.get("on", workflow.get(True))
        started_by = (trigger.get("workflow_run") or {}).get("workflows", []) if isinstance(
            trigger, dict) else []  # fmt: skip
        when = "after " + ", ".join(started_by) + " passed" if started_by else ", ".join(trigger)
        lines.append(f"  subgraph {_quote('cluster_' + name)} {{")
        lines.append(f"    label={_quote(f'{name} ({when})')}; style=dashed;")
        jobs = workflow["jobs"]
        for job, spec in jobs.items():
            node = _quote(f"{name}.{job}")
            lines.append(f"    {node} [label={_quote(job)}];")
            needs = spec.get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                edges.append(f"  {_quote(f'{name}.{need}')} -> {node};")
        lines.append("  }")
        names[name] = (jobs, started_by)
    for name, (jobs, started_by) in names.items():
        for source in started_by:
            for first in (job for job, spec in jobs.items() if not spec.get("needs")):
                for last in names.get(source, ({}, []))[0]:
                    edges.append(f"  {_quote(f'{source}.{last}')} -> {_quote(f'{name}.{first}')} "
                                 '[style=dashed];')  # fmt: skip
    return "\n".join([*lines, *edges, "}"]) + "\n"


def _what_a_team_makes(github: dict, courses: dict) -> list[str]:
    """One line per team the login admits, with what membership gives: the same
    functions turn custom.github into the hub's authenticator settings and roles."""
    admitted = authenticator_config(github)
    makes = (
        ("hub admin", admitted["admin_groups"]),
        *((f"role {role['name']}", role["groups"]) for role in instructor_roles(courses)),
        ("student", github["studentTeams"]),
    )
    lines = []
    for team in sorted(admitted["allowed_organizations"]):
        given = [what for what, teams in makes if team in teams]
        lines.append(f"{team} ({', '.join(given)})" if given else team)
    return lines


def wrapped(label: str, width: int = LABEL_WIDTH) -> str:
    """`label` with every line longer than `width` characters broken between words.

    dot never wraps a label, and one long label widens the whole picture. A
    number keeps its unit on its line (a no-break space, which dot shows as one).
    """
    lines = NUMBER_AND_UNIT.sub("\\1\u00a0", label).split(LINE_BREAK)
    parts = [
        textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""]
        for line in lines
    ]
    return LINE_BREAK.join(part for wrapped_line in parts for part in wrapped_line)


def label_text(source: str) -> str:
    """A dot source with its labels' line breaks as spaces: the words as a reader reads them."""
    return source.replace(LINE_BREAK, " ").replace("\u00a0", " ")


def _attributes(label: str, width: int = LABEL_WIDTH, **more: str) -> str:
    settings = [f"{key}={value}" for key, value in more.items()]
    return ", ".join([f"label={_quote(wrapped(label, width))}", *settings])


def _node(name: str, label: str, **more: str) -> str:
    return f"  {_quote(name)} [{_attributes(label, **more)}];"


def _edge(tail: str, head: str, label: str, **more: str) -> str:
    return f"  {_quote(tail)} -> {_quote(head)} [{_attributes(label, EDGE_LABEL_WIDTH, **more)}];"


def login_flow_source(deployment: str, extra_layers: Sequence[Layer] = ()) -> str:
    """A login from the browser to the course's server, labelled from `deployment`'s values."""
    values = load(deployment, extra_layers=extra_layers).values
    config = values["hub"]["config"]
    github = values["custom"]["github"]
    oauth = config["GitHubOAuthenticator"]
    refresh = config["Authenticator"]
    courses = values["custom"]["courses"]
    hosts = values["proxy"]["https"].get("hosts") or ["the hub's address"]
    teams = ["team check: a member of one of", *_what_a_team_makes(github, courses)]
    choice = [
        "course choice: what the user's groups may start today",
        f"({', '.join(sorted(courses))}); one open course: no form",
    ]
    session_age = f"session older than {refresh['auth_refresh_age']} s: asked again"
    lines = [
        # Top to bottom: the flow is one long chain, too wide for a page across.
        "digraph login {",
        "  rankdir=TB;",
        *HEADER,
        _node("browser", "browser", shape="oval"),
        _node("proxy", "proxy: " + ", ".join(hosts)),
        _node("hub", "hub: " + config["JupyterHub"]["authenticator_class"]),
        _node("github", f"GitHub OAuth (organization {github['organization']})"),
        _node("teams", LINE_BREAK.join(teams)),
        _node("refused", "refusal page: why, and what to do", shape="note"),
        _node("choice", LINE_BREAK.join(choice)),
        _node("server", "the course's server at /user/<name>/"),
        _edge("browser", "proxy", "HTTPS"),
        _edge("proxy", "hub", "/hub/oauth_login"),
        _edge("hub", "github", "consent to scopes " + ", ".join(oauth["scope"])),
        _edge("github", "teams", "/hub/oauth_callback: token, user, teams"),
        _edge("teams", "refused", "in none"),
        _edge("teams", "choice", "teams become groups"),
        _edge("choice", "server", "start"),
        _edge("server", "teams", session_age, style="dashed"),
    ]
    if refresh.get("refresh_pre_spawn"):
        # The authenticator trusts a membership check no longer than JupyterHub's
        # own refresh interval (CoursehubGitHubOAuthenticator.refresh_user).
        fresh_for = min(oauth["membership_fresh_for"], refresh["auth_refresh_age"])
        label = f"before each start, unless confirmed in the last {fresh_for} s"
        lines.append(_edge("choice", "teams", label, style="dashed"))
    if ENROLLMENT_SERVICE in values["hub"].get("services", {}):
        # Someone in no team gets in only to apply, through an invite link the hub checks.
        lines += [
            _node("enrollment", f"{ENROLLMENT_SERVICE} service: apply to a course"),
            # One row lower, beside the server, not widening the choice's row.
            _edge(
                "teams",
                "enrollment",
                "in none, with a signed invite link",
                style="dashed",
                minlen="2",
            ),
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def lifecycle_source(root: Path = ROOT) -> str:
    """The course lifecycle's states and every allowed move, labelled with who makes it.

    The states are those the table of moves names, so a state added there is drawn."""
    allowed = course_lifecycle.ALLOWED
    approvers = read_yaml(root / course_lifecycle.LIFECYCLE_FILE, root)["approvers"]
    # The approvers are people, listed in deploy/lifecycle.yaml; the dispatcher is a program.
    who = {"approver": f"approver ({', '.join(approvers)})"}
    states = dict.fromkeys(state for move in allowed for state in move)
    lines = [
        "digraph lifecycle {",
        "  rankdir=LR;",
        *HEADER,
        # Where a course comes from: a request writes a new file in this state.
        '  "request" [shape=point];',
        *(f"  {_quote(state)};" for state in states),
        _edge("request", course_lifecycle.REQUESTED, "coursehub course request"),
    ]
    for (before, after), role in allowed.items():
        lines.append(_edge(before, after, who.get(role, role)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(source: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(
            "graphviz's dot is not installed (nox -s book installs Debian's graphviz)"
        )
    return subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


PICTURES = {
    "architecture": dot_source,
    "login": login_flow_source,
    "lifecycle": lambda deployment: lifecycle_source(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deployment")
    parser.add_argument("--dot", action="store_true", help="print the dot source, not SVG")
    parser.add_argument(
        "--picture",
        choices=sorted(PICTURES),
        default="architecture",
        help="which picture (the lifecycle's is the same for every deployment)",
    )
    args = parser.parse_args(argv)
    try:
        source = PICTURES[args.picture](args.deployment)
        print(source if args.dot else svg(source), end="")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
