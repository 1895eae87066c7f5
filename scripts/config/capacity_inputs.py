"""The capacity planner's inputs, read from the project's files and checked.

What scripts/deploy/capacity.py plans from: each course of a deployment's merged
values (its guarantees and its `planning` section from the registry), the
placeholder pods' size, the deployment's GKE node pools, and the data files
deploy/cluster/machine-types.yaml and deploy/cluster/node-facts.yaml. Anything
that cannot be planned is a ConfigError naming the value and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from coursehub_tools.config.deployconfig import ROOT, load
from coursehub_tools.config.yamlfiles import ConfigError, read_yaml

MACHINE_TYPES = "deploy/cluster/machine-types.yaml"
NODE_FACTS = "deploy/cluster/node-facts.yaml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PLANNING_KEYS = ("students", "peakShare", "arrivalMinutes", "classDays", "classHours", "imageSize")
POOL_PURPOSE = "hub.jupyter.org/node-purpose"
GIB, MIB = 2**30, 2**20
# Counts are whole pods and nodes; this keeps 120 * 0.8 from rounding up to 97.
EPSILON = 1e-9
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(K|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIX = {None: 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_SUFFIX.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})


@dataclass(frozen=True)
class Requests:
    """What a pod asks the scheduler for: memory in bytes, CPU in cores."""

    memory: float
    cpu: float


@dataclass(frozen=True)
class MachineType:
    name: str
    vcpu: float
    memory_gib: float
    price_per_hour: float


@dataclass(frozen=True)
class NodeFacts:
    """deploy/cluster/node-facts.yaml: GKE's reservations and a new node's start-up."""

    memory_tiers: tuple[tuple[float | None, float], ...]
    cpu_tiers: tuple[tuple[float | None, float], ...]
    eviction_mib: float
    node_start_seconds: float
    pull_megabytes_per_second: float

    def allocatable(self, machine: MachineType) -> Requests:
        memory_gib = machine.memory_gib - _reserved(machine.memory_gib, self.memory_tiers)
        return Requests(
            memory=memory_gib * GIB - self.eviction_mib * MIB,
            cpu=machine.vcpu - _reserved(machine.vcpu, self.cpu_tiers),
        )

    def pull_seconds(self, image_bytes: float) -> float:
        return image_bytes / (self.pull_megabytes_per_second * 1e6)


@dataclass(frozen=True)
class CourseDemand:
    """One course as the planner sees it, checked."""

    slug: str
    start: date
    end: date
    requests: Requests
    students: int
    peak_share: float
    arrival_minutes: float
    class_days: frozenset[int]
    class_hours: float
    image_bytes: float

    @property
    def peak_users(self) -> int:
        return math.ceil(self.students * self.peak_share - EPSILON)

    def meets_on(self, day: date) -> bool:
        return self.start <= day <= self.end and day.weekday() in self.class_days


@dataclass(frozen=True)
class Inputs:
    courses: tuple[CourseDemand, ...]
    user_machine: MachineType
    user_max_nodes: int
    core_machine: MachineType
    core_nodes: int
    placeholder: Requests
    facts: NodeFacts
    # The cluster's monthly budget (deploy/cluster/gke.yaml budget.amount), in the
    # price table's currency; None plans without one.
    budget_per_month: float | None = None


def _reserved(amount: float, tiers: tuple[tuple[float | None, float], ...]) -> float:
    """What GKE reserves of `amount` (GiB or cores): each tier's share of its slice."""
    reserved, below = 0.0, 0.0
    for up_to, share in tiers:
        top = amount if up_to is None else min(amount, up_to)
        reserved += max(0.0, top - below) * share
        below = top if up_to is None else up_to
    return reserved


def memory_bytes(quantity: Any, where: str) -> float:
    match = _QUANTITY.match(str(quantity))
    if not match:
        raise ConfigError(f"{where}: {quantity!r} is not a Kubernetes quantity such as 512M or 2G")
    return float(match[1]) * _SUFFIX[match[2]]


def cpu_cores(quantity: Any, where: str) -> float:
    text = str(quantity)
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise ConfigError(
            f"{where}: {quantity!r} is not a CPU quantity such as 0.5 or 500m"
        ) from None


def course_demand(slug: str, entry: Mapping[str, Any]) -> CourseDemand:
    """A custom.courses entry, checked for what the planner needs."""
    where = f"custom.courses.{slug}"
    for key in ("start", "end"):
        if not entry.get(key):
            raise ConfigError(
                f"{where}: no {key} date; the planner costs a course over its dates, "
                "so it needs start and end (YYYY-MM-DD)"
            )
    planning = entry.get("planning") or {}
    missing = [key for key in PLANNING_KEYS if key not in planning]
    if missing:
        raise ConfigError(
            f"{where}.planning: {', '.join(missing)} missing; the registry file needs them "
            "for the planner (deploy/schema/course.schema.yaml describes each)"
        )
    at = f"{where}.planning"
    students = planning["students"]
    if not isinstance(students, int) or students < 0:
        raise ConfigError(f"{at}.students: {students!r} is not a count (a whole number, 0 or more)")
    share = planning["peakShare"]
    if not 0 <= share <= 1:
        raise ConfigError(f"{at}.peakShare: {share!r} is outside 0..1 (a share of the students)")
    for key, high in (("arrivalMinutes", math.inf), ("classHours", 24)):
        if not 0 < planning[key] <= high:
            raise ConfigError(f"{at}.{key}: {planning[key]!r} must be above 0 and at most {high}")
    return CourseDemand(
        slug=slug,
        start=_date(entry["start"], f"{where}.start"),
        end=_date(entry["end"], f"{where}.end"),
        requests=course_requests(slug, entry),
        students=students,
        peak_share=share,
        arrival_minutes=planning["arrivalMinutes"],
        class_days=frozenset(WEEKDAYS.index(day) for day in planning["classDays"]),
        class_hours=planning["classHours"],
        image_bytes=memory_bytes(planning["imageSize"], f"{at}.imageSize"),
    )


def course_requests(slug: str, entry: Mapping[str, Any]) -> Requests:
    """What one server of the course asks the scheduler for: its guarantees."""
    where, resources = f"custom.courses.{slug}.resources", entry["resources"]
    return Requests(
        memory=memory_bytes(resources["memory"]["guarantee"], where),
        cpu=cpu_cores(resources["cpu"]["guarantee"], where),
    )


def server_requests(values: Mapping[str, Any]) -> dict[str, Requests]:
    """Every kind of user server a deployment starts, by where its guarantees are set."""
    single = values["singleuser"]
    found = {
        "singleuser": Requests(
            memory=memory_bytes(single["memory"].get("guarantee") or 0, "singleuser.memory"),
            cpu=cpu_cores(single["cpu"].get("guarantee") or 0, "singleuser.cpu"),
        )
    }
    for slug, entry in values["custom"]["courses"].items():
        found[f"custom.courses.{slug}"] = course_requests(slug, entry)
    return found


def placeholder_requests(values: Mapping[str, Any]) -> Requests:
    """The placeholder pods' requests, as the chart sets them.

    ref: z2jh templates/scheduling/user-placeholder/statefulset.yaml:
    scheduling.userPlaceholder.resources when set, else singleuser's guarantees.
    """
    own = values["scheduling"]["userPlaceholder"].get("resources") or {}
    if own:
        requests = own.get("requests", {})
        where = "scheduling.userPlaceholder.resources.requests"
        return Requests(
            memory=memory_bytes(requests.get("memory", 0), where),
            cpu=cpu_cores(requests.get("cpu", 0), where),
        )
    single = values["singleuser"]
    requests = Requests(
        memory=memory_bytes(single["memory"].get("guarantee") or 0, "singleuser.memory"),
        cpu=cpu_cores(single["cpu"].get("guarantee") or 0, "singleuser.cpu"),
    )
    if not (requests.memory or requests.cpu):
        raise ConfigError(
            "scheduling.userPlaceholder: placeholders request nothing, so they hold no room; "
            "give singleuser memory or CPU guarantees, or set scheduling.userPlaceholder.resources"
        )
    return requests


def machine_types(root: Path = ROOT) -> tuple[dict[str, MachineType], dict[str, Any]]:
    """The machine table and its provenance (source, dates, region, currency)."""
    data = read_yaml(root / MACHINE_TYPES, root)
    table = {
        name: MachineType(name, spec["vcpu"], spec["memoryGiB"], spec["pricePerHour"])
        for name, spec in data["machineTypes"].items()
    }
    return table, {key: value for key, value in data.items() if key != "machineTypes"}


def machine(table: Mapping[str, MachineType], name: str) -> MachineType:
    if name not in table:
        raise ConfigError(
            f"machine type {name!r} is not in {MACHINE_TYPES}; known: {', '.join(sorted(table))}"
        )
    return table[name]


def node_facts(root: Path = ROOT) -> NodeFacts:
    data = read_yaml(root / NODE_FACTS, root)
    allocatable = data["allocatable"]

    def tiers(key: str) -> tuple[tuple[float | None, float], ...]:
        return tuple((tier.get("upTo"), tier["share"]) for tier in allocatable[key])

    return NodeFacts(
        memory_tiers=tiers("memoryReserved"),
        cpu_tiers=tiers("cpuReserved"),
        eviction_mib=allocatable["evictionThresholdMiB"],
        node_start_seconds=data["nodeStart"]["seconds"],
        pull_megabytes_per_second=data["imagePull"]["megabytesPerSecond"],
    )


def inputs_for(
    deployment: str,
    *,
    root: Path = ROOT,
    machine_type: str | None = None,
    planning_changes: Mapping[str, Mapping[str, Any]] | None = None,
) -> Inputs:
    """Everything the planner needs for `deployment`, from the project's files.

    `machine_type` replaces the user pool's; `planning_changes` maps a course
    slug to planning fields to change (the CLI's --students and --peak-share).
    """
    loaded = load(deployment, root=root)
    cluster_file = loaded.spec.get("cluster")
    if not cluster_file:
        raise ConfigError(f"deployment {deployment!r} runs on no cluster: nothing to plan")
    cluster = read_yaml(root / cluster_file, root)
    table, about = machine_types(root)
    if cluster.get("provider") != "gke":
        raise ConfigError(f"{cluster_file}: the planner knows GKE node pools only")
    region = cluster["zone"].rsplit("-", 1)[0]
    if region != about["region"]:
        raise ConfigError(
            f"{cluster_file}: zone {cluster['zone']} is not in {about['region']}, "
            f"the region {MACHINE_TYPES} has prices for"
        )
    pools = {pool["labels"][POOL_PURPOSE]: pool for pool in cluster["nodePools"]}
    budget = budget_amount(cluster_file, cluster, about["currency"])
    courses = dict(loaded.values["custom"]["courses"])
    for slug, changes in (planning_changes or {}).items():
        if slug not in courses:
            raise ConfigError(
                f"no course {slug!r} in {deployment}; its courses: {', '.join(sorted(courses))}"
            )
        planning = {**(courses[slug].get("planning") or {}), **changes}
        courses[slug] = {**courses[slug], "planning": planning}
    if not courses:
        raise ConfigError(f"deployment {deployment!r} has no courses to plan")
    return Inputs(
        courses=tuple(course_demand(slug, entry) for slug, entry in sorted(courses.items())),
        user_machine=machine(table, machine_type or pools["user"]["machineType"]),
        user_max_nodes=pools["user"]["maxNodes"],
        core_machine=machine(table, pools["core"]["machineType"]),
        core_nodes=pools["core"]["minNodes"],
        placeholder=placeholder_requests(loaded.values),
        facts=node_facts(root),
        budget_per_month=budget,
    )


def budget_amount(source: str, cluster: Mapping[str, Any], currency: str) -> float | None:
    """The cluster's monthly budget as a number, in the price table's currency."""
    amount = (cluster.get("budget") or {}).get("amount")
    if amount is None:
        return None
    if not amount.endswith(currency):
        raise ConfigError(
            f"{source}: budget.amount: {amount!r} is not in {currency}, the currency of "
            f"{MACHINE_TYPES}; write it as <number>{currency}"
        )
    return float(amount.removesuffix(currency))


def _date(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a date written YYYY-MM-DD") from None
