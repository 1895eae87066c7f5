"""How many nodes and placeholders a deployment's courses need, and what they cost.

    coursehub capacity prod                              # the registry's courses on prod
    coursehub capacity prod --machine-type e2-standard-8 # another user-pool machine
    coursehub capacity prod --students climate-lab=200 --peak-share climate-lab=0.5
    coursehub capacity prod --json

Inputs, all read, none written (scripts/config/capacity_inputs.py reads and checks
them): the courses of the merged values (custom.courses, from the registry
deploy/courses/, with each course's guarantees and its `planning` section),
the placeholder pods' size (the chart's rule: scheduling.userPlaceholder.resources,
else singleuser's guarantees), the node pools of the deployment's cluster
(deploy/cluster/gke.yaml), machine sizes and prices
(deploy/cluster/machine-types.yaml), and what a node reserves and how long a
new one takes (deploy/cluster/node-facts.yaml).

For each course and for the hub as a whole it gives users per node, nodes at
the busiest class, the placeholders to keep, how long a new node takes before a
student can start on it, and the cost per hour, per class day and over the
course's dates. The book's chapter "Pre-pulling and capacity" explains the
reasoning; prod's scheduling.userPlaceholder.replicas is the hub's figure here
(tests/deploy/test_capacity.py fails when they differ).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from coursehub_tools.config.capacity_inputs import (
    EPSILON,
    GIB,
    MACHINE_TYPES,
    NODE_FACTS,
    CourseDemand,
    Inputs,
    MachineType,
    Requests,
    inputs_for,
    machine_types,
)
from coursehub_tools.config.yamlfiles import ConfigError

# --- outputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoursePlan:
    slug: str
    users_per_node: int
    limited_by: str
    peak_users: int
    arriving_while_a_node_starts: int
    placeholders: int
    nodes_at_peak: int
    cost_per_class_hour: float
    cost_per_idle_hour: float
    cost_per_class_day: float
    class_days: int
    days: int
    cost_over_dates: float


@dataclass(frozen=True)
class HubPlan:
    first_day: date
    last_day: date
    peak_day: date | None
    peak_courses: tuple[str, ...]
    nodes_at_peak: int
    # What to keep (scheduling.userPlaceholder.replicas): the arrivals' figure,
    # or the most the budget pays for when that is less.
    placeholders: int
    placeholders_for_arrivals: int
    budget_per_month: float | None
    busiest_month: str
    cost_in_busiest_month: float
    cost_in_busiest_month_for_arrivals: float
    cost_per_peak_hour: float
    cost_per_idle_hour: float
    cost_on_peak_day: float
    cost_over_dates: float
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    user_machine: MachineType
    allocatable: Requests
    placeholder: Requests
    placeholders_per_node: int
    node_ready_seconds: float
    courses: tuple[CoursePlan, ...]
    hub: HubPlan


# --- the arithmetic -----------------------------------------------------------------------


def pods_per_node(allocatable: Requests, requests: Requests) -> tuple[int, str]:
    """How many pods of this size fit on a node, and which resource runs out first."""
    fits = {
        name: math.floor(free / asked + EPSILON)
        for name, free, asked in (
            ("memory", allocatable.memory, requests.memory),
            ("cpu", allocatable.cpu, requests.cpu),
        )
        if asked > 0
    }
    if not fits:
        raise ConfigError("a pod that requests neither memory nor CPU takes no room to plan")
    limited_by = min(fits, key=fits.get)
    return fits[limited_by], limited_by


def node_ready_seconds(inputs: Inputs) -> float:
    """A new node's start plus pulling every course image the continuous pre-puller pulls.

    The kubelet pulls one image at a time by default, so a student's image can
    come last (deploy/cluster/node-facts.yaml says why all are counted).
    """
    pulled = sum(course.image_bytes for course in inputs.courses)
    return inputs.facts.node_start_seconds + inputs.facts.pull_seconds(pulled)


def plan(inputs: Inputs) -> Plan:
    allocatable = inputs.facts.allocatable(inputs.user_machine)
    per_node = {}
    for course in inputs.courses:
        fit, limited_by = pods_per_node(allocatable, course.requests)
        if fit == 0:
            raise ConfigError(_too_big(f"custom.courses.{course.slug}", course.requests, inputs))
        per_node[course.slug] = (fit, limited_by)
    placeholders_per_node, _ = pods_per_node(allocatable, inputs.placeholder)
    if placeholders_per_node == 0:
        raise ConfigError(_too_big("the placeholder pod", inputs.placeholder, inputs))
    ready = node_ready_seconds(inputs)

    def nodes(users: Mapping[str, int], placeholders: int) -> int:
        # A student of a course takes 1/users_per_node of a node; placeholders likewise.
        share = sum(count / per_node[slug][0] for slug, count in users.items())
        return math.ceil(share + placeholders / placeholders_per_node - EPSILON)

    def hour_cost(user_nodes: int) -> float:
        core = inputs.core_nodes * inputs.core_machine.price_per_hour
        return core + user_nodes * inputs.user_machine.price_per_hour

    courses = []
    for course in inputs.courses:
        arriving, placeholders = _placeholders(course, ready, inputs.placeholder)
        peak_nodes = nodes({course.slug: course.peak_users}, placeholders)
        class_hour = hour_cost(peak_nodes)
        idle_hour = hour_cost(nodes({}, placeholders))
        class_day = course.class_hours * class_hour + (24 - course.class_hours) * idle_hour
        days = (course.end - course.start).days + 1
        meeting = sum(course.meets_on(course.start + timedelta(n)) for n in range(days))
        courses.append(
            CoursePlan(
                slug=course.slug,
                users_per_node=per_node[course.slug][0],
                limited_by=per_node[course.slug][1],
                peak_users=course.peak_users,
                arriving_while_a_node_starts=arriving,
                placeholders=placeholders,
                nodes_at_peak=peak_nodes,
                cost_per_class_hour=class_hour,
                cost_per_idle_hour=idle_hour,
                cost_per_class_day=class_day,
                class_days=meeting,
                days=days,
                cost_over_dates=meeting * class_day + (days - meeting) * 24 * idle_hour,
            )
        )
    return Plan(
        user_machine=inputs.user_machine,
        allocatable=allocatable,
        placeholder=inputs.placeholder,
        placeholders_per_node=placeholders_per_node,
        node_ready_seconds=ready,
        courses=tuple(courses),
        hub=_hub_plan(inputs, courses, nodes, hour_cost),
    )


def _placeholders(course: CourseDemand, ready: float, placeholder: Requests) -> tuple[int, int]:
    """Students arriving while one new node gets ready, and the placeholders that hold them.

    A student's pod preempts placeholders (lowest priority) on a running node
    and starts at once; the evicted placeholders go pending, which makes the
    cluster autoscaler add a node, ready `ready` seconds later. Until then every
    arriving student needs a placeholder's room. Students arrive evenly over
    the class's first `arrival_minutes`.
    """
    per_second = course.peak_users / (course.arrival_minutes * 60)
    arriving = min(course.peak_users, math.ceil(per_second * ready - EPSILON))
    # A student bigger than a placeholder evicts several; a smaller one part of one.
    size = max(
        asked / offered
        for asked, offered in (
            (course.requests.memory, placeholder.memory),
            (course.requests.cpu, placeholder.cpu),
        )
        if offered > 0
    )
    return arriving, math.ceil(arriving * size - EPSILON)


def _hub_plan(
    inputs: Inputs,
    courses: list[CoursePlan],
    nodes: Callable[[Mapping[str, int], int], int],
    hour_cost: Callable[[int], float],
) -> HubPlan:
    """Day by day over the registry's dates: the courses that meet are assumed to meet at once.

    The placeholder count is one number in the values, so the hub keeps the
    largest any day needs, every day, unless that costs more in some month
    than the cluster's budget: then the most placeholders the budget pays for,
    and a warning that says what the rest costs the students and what to change.
    """
    by_slug = {planned.slug: planned for planned in courses}
    first = min(course.start for course in inputs.courses)
    last = max(course.end for course in inputs.courses)
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    meeting = {day: [c for c in inputs.courses if c.meets_on(day)] for day in days}
    wanted = max(sum(by_slug[c.slug].placeholders for c in met) for met in meeting.values())

    def day_costs(placeholders: int) -> dict[date, tuple[int, float]]:
        """Each day's user nodes at its class and what the day costs."""
        idle = hour_cost(nodes({}, placeholders))
        found = {}
        for day, met in meeting.items():
            day_nodes = nodes({c.slug: c.peak_users for c in met}, placeholders)
            hours = max((c.class_hours for c in met), default=0)
            found[day] = (day_nodes, hours * hour_cost(day_nodes) + (24 - hours) * idle)
        return found

    def busiest_month(placeholders: int) -> tuple[str, float]:
        months: dict[str, float] = {}
        for day, (_, cost) in day_costs(placeholders).items():
            months[day.strftime("%Y-%m")] = months.get(day.strftime("%Y-%m"), 0.0) + cost
        return max(months.items(), key=lambda item: item[1])

    budget = inputs.budget_per_month
    placeholders = wanted
    # More placeholders never cost less, so the first count from the top that fits is the most.
    while budget is not None and placeholders > 0 and busiest_month(placeholders)[1] > budget:
        placeholders -= 1
    month, month_cost = busiest_month(placeholders)
    idle_nodes = nodes({}, placeholders)
    total, peak = 0.0, (idle_nodes, None, 0.0)
    for day, (day_nodes, cost) in day_costs(placeholders).items():
        total += cost
        if day_nodes > peak[0]:
            peak = (day_nodes, day, cost)
    peak_nodes, peak_day, peak_cost = peak
    warnings = _budget_warnings(inputs, wanted, placeholders, busiest_month)
    if peak_nodes > inputs.user_max_nodes:
        warnings.append(
            f"on {peak_day} the hub needs {peak_nodes} user nodes; the user pool's "
            f"maxNodes is {inputs.user_max_nodes}"
        )
    return HubPlan(
        first_day=first,
        last_day=last,
        peak_day=peak_day,
        peak_courses=tuple(c.slug for c in meeting.get(peak_day, [])),
        nodes_at_peak=peak_nodes,
        placeholders=placeholders,
        placeholders_for_arrivals=wanted,
        budget_per_month=budget,
        busiest_month=month,
        cost_in_busiest_month=month_cost,
        cost_in_busiest_month_for_arrivals=busiest_month(wanted)[1],
        cost_per_peak_hour=hour_cost(peak_nodes),
        cost_per_idle_hour=hour_cost(idle_nodes),
        cost_on_peak_day=peak_cost if peak_day else 24 * hour_cost(idle_nodes),
        cost_over_dates=total,
        warnings=tuple(warnings),
    )


def _budget_warnings(
    inputs: Inputs, wanted: int, kept: int, busiest_month: Callable[[int], tuple[str, float]]
) -> list[str]:
    """What to change when the arrivals' placeholders and the budget disagree."""
    budget = inputs.budget_per_month
    if budget is None or kept == wanted:
        return []
    month, cost = busiest_month(wanted)
    lines = [
        f"budget: the {wanted} placeholders the arrivals need cost {cost:.0f} in {month}, more "
        f"than the {budget:.0f} a month of deploy/cluster/gke.yaml budget.amount; kept "
        f"{kept}, the most it pays for: set scheduling.userPlaceholder.replicas: {kept}, "
        f"or raise budget.amount to {math.ceil(cost)}, or plan fewer students arriving at once"
    ]
    if busiest_month(kept)[1] > budget:
        lines.append(
            f"budget: even with no placeholders {month} costs {busiest_month(0)[1]:.0f}, more "
            f"than {budget:.0f}: raise budget.amount, or choose a cheaper machine type"
        )
    else:
        lines.append(
            f"with {kept} placeholders, students past the first {kept} arriving at a class "
            f"wait up to {node_ready_seconds(inputs) / 60:.1f} min for a new node"
        )
    return lines


def _too_big(what: str, requests: Requests, inputs: Inputs) -> str:
    machine, free = inputs.user_machine, inputs.facts.allocatable(inputs.user_machine)
    return (
        f"{what}: a guarantee of {requests.memory / GIB:.1f} GiB memory and {requests.cpu:g} CPU "
        f"does not fit on one {machine.name} node, which offers pods {free.memory / GIB:.1f} GiB "
        f"and {free.cpu:.2f} CPU; choose a larger machine type or a smaller guarantee"
    )


# --- the command line ---------------------------------------------------------------------


def report(plan: Plan, deployment: str, about: Mapping[str, Any]) -> str:
    machine, free = plan.user_machine, plan.allocatable
    money = about["currency"]
    lines = [
        f"{deployment}: user nodes {machine.name} ({machine.vcpu:g} vCPU, "
        f"{machine.memory_gib:g} GiB; pods get {free.cpu:.2f} CPU, {free.memory / GIB:.1f} GiB) "
        f"at {machine.price_per_hour:.4f} {money}/h",
        f"prices: {about['region']} on-demand list, {about['source']}, generated "
        f"{about['generated']}",
        f"a new node is ready for a student after {plan.node_ready_seconds / 60:.1f} min "
        f"({NODE_FACTS}); a placeholder requests {plan.placeholder.memory / GIB:.2f} GiB, "
        f"{plan.placeholder.cpu:g} CPU ({plan.placeholders_per_node} a node)",
        "",
        f"{'course':<20}{'users/node':>12}{'peak':>6}{'arriving':>10}{'placeholders':>14}"
        f"{'nodes':>7}{f'{money}/class h':>14}{f'{money}/class day':>16}{f'{money} dates':>11}",
    ]
    for course in plan.courses:
        lines.append(
            f"{course.slug:<20}{f'{course.users_per_node} ({course.limited_by})':>12}"
            f"{course.peak_users:>6}{course.arriving_while_a_node_starts:>10}"
            f"{course.placeholders:>14}{course.nodes_at_peak:>7}"
            f"{course.cost_per_class_hour:>14.2f}{course.cost_per_class_day:>16.2f}"
            f"{course.cost_over_dates:>11.0f}"
        )
    hub = plan.hub
    lines += [
        "",
        f"hub, {hub.first_day} to {hub.last_day}: busiest day {hub.peak_day} "
        f"({' + '.join(hub.peak_courses) or 'no class'}), {hub.nodes_at_peak} user nodes",
        f"  placeholders to keep: {hub.placeholders} (scheduling.userPlaceholder.replicas); "
        f"the arrivals need {hub.placeholders_for_arrivals}",
        f"  busiest month {hub.busiest_month}: {hub.cost_in_busiest_month:.0f} {money}"
        + (f" of a {hub.budget_per_month:.0f} {money} budget" if hub.budget_per_month else ""),
        f"  {money} per hour: {hub.cost_per_peak_hour:.2f} in that class, "
        f"{hub.cost_per_idle_hour:.2f} between classes; {hub.cost_on_peak_day:.2f} that day; "
        f"{hub.cost_over_dates:.0f} over the dates",
    ]
    lines += [f"warning: {warning}" for warning in hub.warnings]
    return "\n".join(lines)


def _assignment(kind: type) -> Callable[[str], tuple[str, Any]]:
    def parse(text: str) -> tuple[str, Any]:
        slug, equals, value = text.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"{text!r}: write SLUG=VALUE")
        try:
            return slug, kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a {kind.__name__}") from None

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deployment", help="a deployment of deploy/deployments.yaml, e.g. prod")
    parser.add_argument(
        "--machine-type", help=f"the user pool's machine type instead ({MACHINE_TYPES})"
    )
    parser.add_argument(
        "--students", action="append", default=[], type=_assignment(int), metavar="SLUG=N"
    )
    parser.add_argument(
        "--peak-share", action="append", default=[], type=_assignment(float), metavar="SLUG=X"
    )
    parser.add_argument("--json", action="store_true", help="the plan as JSON")
    args = parser.parse_args(argv)
    changes: dict[str, dict[str, Any]] = {}
    for key, assignments in (("students", args.students), ("peakShare", args.peak_share)):
        for slug, value in assignments:
            changes.setdefault(slug, {})[key] = value
    try:
        inputs = inputs_for(
            args.deployment, machine_type=args.machine_type, planning_changes=changes
        )
        result = plan(inputs)
        _, about = machine_types()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(result), default=str, indent=2))
    else:
        print(report(result, args.deployment, about))
    return 0


if __name__ == "__main__":
    sys.exit(main())
