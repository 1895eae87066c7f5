"""The architecture drawn from a deployment's merged values, as Graphviz's dot language.

Every box and label comes from the values (and the cluster spec), so the
picture in the chapter "Architecture" changes when the configuration does.
`dot` (Debian's graphviz, installed by `nox -s book`) renders it offline.

    coursehub-diagram prod > prod.svg
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from coursehub_tools.deployconfig import load
from coursehub_tools.yamlfiles import ROOT, ConfigError


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


def svg(source: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(
            "graphviz's dot is not installed (nox -s book installs Debian's graphviz)"
        )
    return subprocess.run([dot, "-Tsvg"], input=source, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deployment")
    parser.add_argument("--dot", action="store_true", help="print the dot source, not SVG")
    args = parser.parse_args(argv)
    try:
        source = dot_source(args.deployment)
        print(source if args.dot else svg(source), end="")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
