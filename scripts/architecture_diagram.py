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

from coursehub_tools.deployconfig import load
from coursehub_tools.yamlfiles import ConfigError


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
