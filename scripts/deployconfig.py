"""The merged values of a deployment, exactly as the cluster and the local hub get them.

A deployment (deploy/deployments.yaml) is an ordered list of values files. This
module merges them the way Helm does, adds hub-config/ as hub.extraFiles, and
checks the result against deploy/schema/values.schema.yaml. Every consumer goes
through `merged_values`: the Helm deploy, the local hub, the tests and the book.

    coursehub-config check              # every deployment
    coursehub-config show staging       # merged values as YAML
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from coursehub.course_requests import end_problem
from coursehub_tools import chart, hubploy_layout, sops_files
from coursehub_tools.yamlfiles import ROOT, ConfigError, read_yaml, relative

DEPLOYMENTS_FILE = "deploy/deployments.yaml"
DEPLOYMENTS_SCHEMA = "deploy/schema/deployments.schema.yaml"
VALUES_SCHEMA = "deploy/schema/values.schema.yaml"
COURSES_DIR = "deploy/courses"
COURSE_SCHEMA = "deploy/schema/course.schema.yaml"
HUBPLOY_IMAGES = "hubploy's image tags (hubploy.yaml, git)"


@dataclass
class Layer:
    """One values file (or runtime addition) and what it sets."""

    source: str
    values: dict[str, Any]


@dataclass
class Deployment:
    name: str
    backend: str
    layers: list[Layer]
    skipped: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    chart: dict[str, str] = field(default_factory=dict)

    @property
    def values(self) -> dict[str, Any]:
        """Everything the hub and its pods see: the chart's defaults, then our layers."""
        return self._merged(self.layers)

    @property
    def helm_values(self) -> dict[str, Any]:
        """What is handed to helm: our layers only, as the chart adds its defaults itself."""
        return self._merged(self.layers[1:])

    def _merged(self, layers: list[Layer]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for layer in layers:
            merged = merge(merged, layer.values)
        # Derived after merging, so a course added by any layer is pre-pulled too.
        return merge(merged, prepuller_images(merged.get("custom", {}).get("courses", {})))

    def mounted_values(self) -> dict[str, Any]:
        """The hub pod's secret/values.yaml: the values plus the chart's and release's names.

        ref: z2jh templates/hub/secret.yaml adds `Chart` (Name, Version,
        AppVersion) and `Release` (Name, Namespace, Service) to the values it mounts;
        the chart's config reads them for user pods' labels and cluster-wide names.
        """
        mounted = {**self.values, "Chart": dict(self.chart)}
        if "release" in self.spec:
            mounted["Release"] = {
                "Name": self.spec["release"],
                "Namespace": self.spec["namespace"],
                "Service": "Helm",
            }
        return mounted


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge like Helm: maps merge key by key, anything else is replaced, null deletes."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_deployments(root: Path = ROOT) -> dict[str, Any]:
    spec = read_yaml(root / DEPLOYMENTS_FILE, root)
    schema = read_yaml(root / DEPLOYMENTS_SCHEMA, root)
    _check(spec, schema, [Layer(DEPLOYMENTS_FILE, spec)])
    hubploy_layout.check(spec, root)
    return spec


def load(
    name: str,
    *,
    root: Path = ROOT,
    decrypt: bool = False,
    extra_layers: Sequence[Layer] = (),
) -> Deployment:
    """Read, merge and check deployment `name`.

    The registry and hub-config/ come right after the chart's defaults: a deploy
    carries them in the chart folder it hands hubploy (scripts/cluster.py), so
    helm reads them before the values files. Encrypted layers are decrypted with
    sops when `decrypt` is true and skipped (and listed in `Deployment.skipped`)
    otherwise. hubploy's image tags follow the files, as its --set-string flags
    do. `extra_layers` come last: the local hub's stand-in address and ports, or
    a test's changes.
    """
    spec = load_deployments(root)
    deployments = spec["deployments"]
    if name not in deployments:
        raise ConfigError(
            f"{DEPLOYMENTS_FILE}: no deployment {name!r}; defined: {', '.join(deployments)}"
        )
    entry = deployments[name]
    pin = chart.pinned(root)
    layers = [
        Layer(relative(pin.folder / "values.yaml", root), chart.defaults(root)),
        *generated_layers(spec, root),
    ]
    skipped: list[str] = []
    for item in entry["values"]:
        if isinstance(item, str):
            layers.append(Layer(item, _mapping(read_yaml(root / item, root), item)))
            continue
        path = root / item["path"]
        if not path.is_file():
            raise ConfigError(f"{item['path']}: file not found (listed by deployment {name!r})")
        if decrypt:
            plain = yaml.safe_load(sops_files.decrypt(path, root)) or {}
            layers.append(Layer(item["path"], _mapping(plain, item["path"])))
        else:
            sops_files.require_encrypted(path, root)
            skipped.append(item["path"])
    # Outside a git checkout (a copy of the files) there is no tag to derive,
    # and the layer is left out; hubploy itself needs the checkout.
    if "hubploy" in entry and hubploy_layout.in_git_checkout(root):
        layers.append(Layer(HUBPLOY_IMAGES, hubploy_layout.image_values(spec, root)))
    layers.extend(extra_layers)
    deployment = Deployment(name, entry["backend"], layers, skipped, entry, chart.metadata(root))
    check_values(deployment, root)
    return deployment


def generated_layers(spec: dict[str, Any], root: Path = ROOT) -> list[Layer]:
    """What is made from the repository rather than written as values: the course
    registry (custom.courses) and hub-config/ (hub.extraFiles)."""
    return [
        Layer(COURSES_DIR + "/", course_values(root)),
        Layer(spec["hubConfig"]["source"] + "/", hub_config_values(spec, root)),
    ]


def hub_config_values(spec: dict[str, Any], root: Path = ROOT) -> dict[str, Any]:
    """hub.extraFiles for every file under hub-config/, mounted at the same relative path."""
    source = root / spec["hubConfig"]["source"]
    mount_root = spec["hubConfig"]["mountRoot"].rstrip("/")
    files = {}
    for path in sorted(source.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(source).as_posix()
        files[extra_file_key(rel)] = {
            "mountPath": f"{mount_root}/{rel}",
            "stringData": path.read_text(),
        }
    return {"hub": {"extraFiles": files}}


def course_values(root: Path = ROOT) -> dict[str, Any]:
    """custom.courses from the registry, deploy/courses/*.yaml, one file a course."""
    schema = read_yaml(root / COURSE_SCHEMA, root)
    courses: dict[str, Any] = {}
    files: dict[str, str] = {}
    for path in sorted((root / COURSES_DIR).glob("*.yaml")):
        source = relative(path, root)
        course = _mapping(read_yaml(path, root), source)
        check_course(course, schema, [Layer(source, course)])
        slug = course["slug"]
        if slug in files:
            raise ConfigError(f"{source}: slug: {slug!r} is already the slug of {files[slug]}")
        files[slug] = source
        courses[slug] = course
    return {"custom": {"courses": courses}}


def check_course(
    course: dict[str, Any], schema: dict[str, Any], layers: list[Layer], prefix: Sequence = ()
) -> None:
    """A course against the schema, then what a schema cannot say: end not before start."""
    _check(course, schema, layers, prefix)
    if problem := end_problem(course):
        key_path = [*prefix, "end"]
        raise ConfigError(f"{_source_of(key_path, layers)}: {'.'.join(key_path)}: {problem}")


def prepuller_images(courses: dict[str, Any]) -> dict[str, Any]:
    """prePuller.extraImages for every course image (ref: z2jh prePuller.extraImages).

    The chart pulls singleuser.profileList's images itself, but coursehub's
    profile list is computed in the hub for each user, so the chart never sees it.
    """
    images = {}
    for slug, course in courses.items():
        # name:tag[@digest]; the chart writes "<name>:<tag>", so a digest rides on the tag.
        reference, at, digest = course["image"].partition("@")
        name, _, tag = reference.rpartition(":")
        images[f"course-{slug}"] = {"name": name, "tag": tag + at + digest}
    return {"prePuller": {"extraImages": images}} if images else {}


def extra_file_key(relative_path: str) -> str:
    """A Kubernetes Secret key for a file: letters, digits, '-', '_' and '.' only."""
    return "hub-config." + relative_path.replace("/", "--")


def check_values(deployment: Deployment, root: Path = ROOT) -> None:
    """Ours first (stricter, clearer messages), then the pinned chart's own schema."""
    schema = read_yaml(root / VALUES_SCHEMA, root)
    values = deployment.values
    _check(values, schema, deployment.layers)
    _check(values, chart.values_schema(root), deployment.layers, draft=jsonschema.Draft7Validator)
    # Courses may come from any layer (a test adds one); each is checked as a registry file is.
    course_schema = read_yaml(root / COURSE_SCHEMA, root)
    for slug, course in values.get("custom", {}).get("courses", {}).items():
        prefix = ["custom", "courses", slug]
        check_course(course, course_schema, deployment.layers, prefix)
        if course["slug"] != slug:
            source = _source_of([*prefix, "slug"], deployment.layers)
            raise ConfigError(f"{source}: {'.'.join(prefix)}.slug: must be {slug!r}")


def check_document(data: Any, schema: dict[str, Any], source: str) -> None:
    """One file against its schema, with deployconfig's one-line errors naming `source`."""
    _check(data, schema, [Layer(source, data)])


def _check(
    instance: Any,
    schema: dict[str, Any],
    layers: list[Layer],
    prefix: Sequence = (),
    draft: type = jsonschema.Draft202012Validator,
) -> None:
    validator = draft(schema, format_checker=draft.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    key_path, problem = _describe(error)
    key_path = [*prefix, *key_path]
    if error.validator == "required":
        missing = [*key_path, _missing_key(error)]
        removed_by = _source_of(missing, layers, removed=True)
        if removed_by:
            # Merging with null deletes a key; name the layer that did.
            dotted = ".".join(str(part) for part in missing)
            raise ConfigError(
                f"{removed_by}: {dotted}: set to null, which removes a chart default "
                "hub-config relies on; give it a value instead"
            )
    source = _source_of(key_path, layers)
    dotted = ".".join(str(part) for part in key_path) or "(top level)"
    raise ConfigError(f"{source}: {dotted}: {problem}")


def _describe(error: jsonschema.ValidationError) -> tuple[list[Any], str]:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return path + unknown[:1], f"unknown key; allowed here: {', '.join(allowed)}"
    if "propertyNames" in error.relative_schema_path:
        allowed = error.validator_value if error.validator == "enum" else None
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        if error.validator == "pattern":
            hint = f"; names here must match {error.validator_value}"
        return [*path, error.instance], f"unknown key{hint}"
    if error.validator == "required":
        return path, error.message.replace("is a required property", "is required but missing")
    if error.validator in ("pattern", "format") and "mustBe" in error.schema:
        # A regular expression is no explanation; the schema's `mustBe` says what is meant.
        return path, f"{error.instance!r} is not {error.schema['mustBe']}"
    if error.validator == "maxProperties" and "description" in error.schema:
        return path, error.schema["description"]
    if error.validator == "const" and "description" in error.schema:
        return path, f"must be {error.validator_value!r}, {error.schema['description']}"
    return path, f"{error.message} (found {type(error.instance).__name__})"


def _missing_key(error: jsonschema.ValidationError) -> str:
    return next(key for key in error.validator_value if key not in error.instance)


def _source_of(key_path: list[Any], layers: list[Layer], removed: bool = False) -> str:
    """The last layer that sets `key_path`: the one to fix.

    With `removed`, the last layer that sets it to null, or "" if none does.
    """
    for layer in reversed(layers):
        node: Any = layer.values
        for part in key_path:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
            if in_dict or in_list:
                node = node[part]
            else:
                break
        else:
            if not removed or node is None:
                return layer.source
    return "" if removed else " + ".join(layer.source for layer in layers)


def _mapping(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping of values, found {type(data).__name__}")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the project folder (default: this checkout)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="merge and check every deployment")
    show = sub.add_parser("show", help="print a deployment's merged values")
    show.add_argument("deployment")
    show.add_argument(
        "--decrypt", action="store_true", help="decrypt with sops ($SOPS_AGE_KEY_FILE)"
    )
    show.add_argument(
        "--without-files", action="store_true", help="leave out hub.extraFiles' contents"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            for name in load_deployments(args.root)["deployments"]:
                deployment = load(name, root=args.root)
                files = " + ".join(layer.source for layer in deployment.layers)
                note = f" (encrypted, not read: {', '.join(deployment.skipped)})"
                print(f"{name}: ok: {files}{note if deployment.skipped else ''}")
        else:
            values = load(args.deployment, root=args.root, decrypt=args.decrypt).values
            if args.without_files:
                for entry in values["hub"]["extraFiles"].values():
                    entry["stringData"] = f"<{len(entry['stringData'])} characters>"
            print(yaml.safe_dump(values, sort_keys=False), end="")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
