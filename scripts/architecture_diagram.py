"""The architecture drawn from a deployment's merged values, as Graphviz's dot language.

Every box and label comes from the values (and the cluster spec), so the
picture in the chapter "Architecture" changes when the configuration does; the
login flow's from the values and the hub-side code that reads them, the course
lifecycle's from scripts/course_lifecycle.py's table of moves.
`dot` (Debian's graphviz, installed by `nox -s book`) renders it offline.

    coursehub-diagram prod > prod.svg
    coursehub-diagram prod --picture login > login.svg
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from coursehub.enrollment import SERVICE_NAME as ENROLLMENT_SERVICE
from coursehub.github import authenticator_config
from coursehub.roles import instructor_roles
from coursehub_tools import course_lifecycle
from coursehub_tools.deployconfig import Layer, load
from coursehub_tools.yamlfiles import ROOT, ConfigError, read_yaml


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
    culling = f"idle culler: every {cull['every']} s, idle after {cull['timeout'] // 60} min"
    home = f"home: {storage['type']} {storage.get('capacity', '')}".strip()
    lines = [
        "digraph coursehub {",
        '  rankdir=LR; node [shape=box, style="rounded", fontname="sans-serif", fontsize=11];',
        '  edge [fontname="sans-serif", fontsize=9];',
        f"  browser [label={_quote('student or instructor (browser)')}, shape=oval];",
        f"  github [label={_quote(f'GitHub (organization {organization})')}];",
        f"  proxy [label={_quote('proxy: ' + ', '.join(hosts))}];",
        f"  hub [label={_quote('hub (database: ' + values['hub']['db']['type'] + ')')}];",
        f"  culler [label={_quote(culling)}];",
        '  subgraph cluster_user { label="user node pool"; style=dashed;',
    ]
    for slug, course in sorted(courses.items()):
        label = f"{slug} server: {course['image']}"
        lines.append(f"    {_quote('pod-' + slug)} [label={_quote(label)}];")
    if placeholders.get("enabled"):
        label = f"{placeholders['replicas']} placeholders"
        lines.append(f"    placeholders [label={_quote(label)}, style=dashed];")
    label = f"pre-puller: {len(courses)} course images"
    lines.append(f"    prepuller [label={_quote(label)}];")
    lines += [
        "  }",
        f"  home [label={_quote(home)}, shape=cylinder];",
        f"  shared [label={_quote('shared data at ' + shared['mountPath'])}, shape=cylinder];",
        '  browser -> proxy [label="HTTPS"];',
        '  proxy -> hub [label="/hub/"];',
        '  hub -> github [label="OAuth, teams"];',
        '  culler -> hub [label="REST API"];',
        '  hub -> proxy [label="routes", style=dashed];',
    ]
    for slug in sorted(courses):
        pod = _quote("pod-" + slug)
        lines += [
            f"  proxy -> {pod} [label={_quote('/user/<name>/')}];",
            f"  hub -> {pod} [label=starts, style=dashed];",
            f"  {pod} -> home; {pod} -> shared;",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def pipeline_source(workflows: Path = ROOT / ".github" / "workflows") -> str:
    """The workflows' jobs as boxes, one cluster per workflow, with `needs` as arrows and
    a workflow started by another's completion joined to that workflow's jobs."""
    lines = [
        "digraph pipeline {",
        '  rankdir=LR; node [shape=box, style="rounded", fontname="sans-serif", fontsize=11];',
        '  edge [fontname="sans-serif", fontsize=9];',
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


def _attributes(label: str, **more: str) -> str:
    return ", ".join([f"label={_quote(label)}", *(f"{key}={value}" for key, value in more.items())])


def _node(name: str, label: str, **more: str) -> str:
    return f"  {_quote(name)} [{_attributes(label, **more)}];"


def _edge(tail: str, head: str, label: str, **more: str) -> str:
    return f"  {_quote(tail)} -> {_quote(head)} [{_attributes(label, **more)}];"


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
        '  rankdir=TB; node [shape=box, style="rounded", fontname="sans-serif", fontsize=11];',
        '  edge [fontname="sans-serif", fontsize=9];',
        _node("browser", "browser", shape="oval"),
        _node("proxy", "proxy: " + ", ".join(hosts)),
        _node("hub", "hub: " + config["JupyterHub"]["authenticator_class"]),
        _node("github", f"GitHub OAuth (organization {github['organization']})"),
        # dot reads the two characters \n in a label as a line break.
        _node("teams", "\\n".join(teams)),
        _node("refused", "refusal page: why, and what to do", shape="note"),
        _node("choice", "\\n".join(choice)),
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
            _edge("teams", "enrollment", "in none, with a signed invite link", style="dashed"),
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
        '  rankdir=LR; node [shape=box, style="rounded", fontname="sans-serif", fontsize=11];',
        '  edge [fontname="sans-serif", fontsize=9];',
        # Where a course comes from: a request writes a new file in this state.
        '  "request" [shape=point];',
        *(f"  {_quote(state)};" for state in states),
        _edge("request", course_lifecycle.REQUESTED, "coursehub-course request"),
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
