"""The capacity planner: its arithmetic on a made-up cluster, its refusals, and prod's placeholders.

Expectations are worked out here from the made-up inputs, or read from the
same merged values and data files the planner reads; none is a copy of its output.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta

import pytest

from coursehub_tools.config.capacity_inputs import (
    GIB,
    CourseDemand,
    Inputs,
    MachineType,
    NodeFacts,
    Requests,
    course_demand,
    inputs_for,
    machine_types,
    node_facts,
    placeholder_requests,
)
from coursehub_tools.config.deployconfig import ROOT, ConfigError, load, read_yaml
from coursehub_tools.deploy.capacity import main, plan, pods_per_node

pytestmark = pytest.mark.unit

# A made-up cluster: GKE-like tiers with round numbers, and nodes that start at once.
FACTS = NodeFacts(
    memory_tiers=((4, 0.25), (None, 0.1)),
    cpu_tiers=((1, 0.1), (None, 0.0)),
    eviction_mib=0,
    node_start_seconds=300,
    pull_megabytes_per_second=10,
)
NODE = MachineType("made-up-4", vcpu=4, memory_gib=20, price_per_hour=1.0)
CORE = MachineType("made-up-core", vcpu=2, memory_gib=8, price_per_hour=0.25)
MONDAY = date(2027, 1, 4)


def course(slug: str = "lab", **changes) -> CourseDemand:
    fields = {
        "slug": slug,
        "start": MONDAY,
        "end": MONDAY + timedelta(13),  # two weeks, Monday to Sunday
        "requests": Requests(memory=2 * GIB, cpu=0.25),
        "students": 40,
        "peak_share": 0.75,
        "arrival_minutes": 10,
        "class_days": frozenset({0, 2}),  # Monday and Wednesday
        "class_hours": 3,
        "image_bytes": 1e9,
    }
    return CourseDemand(**{**fields, **changes})


def inputs(*courses: CourseDemand, **changes) -> Inputs:
    fields = {
        "courses": courses or (course(),),
        "user_machine": NODE,
        "user_max_nodes": 20,
        "core_machine": CORE,
        "core_nodes": 1,
        "placeholder": Requests(memory=1 * GIB, cpu=0.25),
        "facts": FACTS,
    }
    return Inputs(**{**fields, **changes})


# --- users per node -----------------------------------------------------------------------


def test_allocatable_follows_the_reservation_tiers():
    free = FACTS.allocatable(NODE)
    # 25% of the first 4 GiB and 10% of the other 16; 10% of the first core only.
    assert free.memory == pytest.approx((20 - 0.25 * 4 - 0.1 * 16) * GIB)
    assert free.cpu == pytest.approx(4 - 0.1)


def test_users_per_node_is_set_by_the_scarcer_resource():
    free = FACTS.allocatable(NODE)  # 17.4 GiB, 3.9 CPU
    assert pods_per_node(free, Requests(2 * GIB, 0.25)) == (math.floor(17.4 / 2), "memory")
    assert pods_per_node(free, Requests(1 * GIB, 0.5)) == (math.floor(3.9 / 0.5), "cpu")


def test_real_gke_reservations_for_the_user_pool_machine():
    table, _ = machine_types()
    gke = read_yaml(ROOT / "deploy/cluster/gke.yaml")
    user_pool = next(p for p in gke["nodePools"] if p["name"] == "user")
    machine = table[user_pool["machineType"]]
    free = node_facts().allocatable(machine)
    # GKE's documented tiers (25, 20, 10, 6, then 2 %) and 100 MiB eviction threshold.
    tiers = [(4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06)]
    left, reserved = machine.memory_gib, 0.0
    for size, share in tiers:
        reserved += min(left, size) * share
        left -= min(left, size)
    reserved += left * 0.02
    assert free.memory == pytest.approx((machine.memory_gib - reserved) * GIB - 100 * 2**20)
    assert 0 < free.cpu < machine.vcpu


# --- placeholders, nodes and cost ---------------------------------------------------------


def test_placeholders_cover_the_students_arriving_while_a_node_starts():
    lab = course()  # 30 at the peak, arriving over 10 minutes; 2 GiB = two placeholders each
    result = plan(inputs(lab))
    ready = FACTS.node_start_seconds + lab.image_bytes / (FACTS.pull_megabytes_per_second * 1e6)
    assert result.node_ready_seconds == pytest.approx(ready)
    arriving = min(30, math.ceil(30 / 600 * ready))
    (planned,) = result.courses
    assert planned.arriving_while_a_node_starts == arriving
    assert planned.placeholders == 2 * arriving


def test_a_class_arriving_faster_than_a_node_needs_all_its_room_warm():
    quick = course(arrival_minutes=1)
    (planned,) = plan(inputs(quick)).courses
    assert planned.arriving_while_a_node_starts == quick.peak_users


def test_every_course_image_delays_a_new_node():
    one = plan(inputs(course("a"))).node_ready_seconds
    two = plan(inputs(course("a"), course("b", image_bytes=3e9))).node_ready_seconds
    assert two - one == pytest.approx(3e9 / (FACTS.pull_megabytes_per_second * 1e6))


def test_cost_over_the_dates_counts_class_days_and_idle_days():
    lab = course()
    result = plan(inputs(lab))
    (planned,) = result.courses
    free = FACTS.allocatable(NODE)
    users_per_node, _ = pods_per_node(free, lab.requests)
    placeholders_per_node, _ = pods_per_node(free, Requests(1 * GIB, 0.25))
    share = lab.peak_users / users_per_node + planned.placeholders / placeholders_per_node
    assert planned.nodes_at_peak == math.ceil(share)
    class_hour = CORE.price_per_hour + planned.nodes_at_peak * NODE.price_per_hour
    idle_nodes = math.ceil(planned.placeholders / placeholders_per_node)
    idle_hour = CORE.price_per_hour + idle_nodes * NODE.price_per_hour
    assert planned.cost_per_class_hour == pytest.approx(class_hour)
    assert planned.cost_per_idle_hour == pytest.approx(idle_hour)
    # Two Mondays and two Wednesdays in two weeks; the other ten days idle.
    assert (planned.class_days, planned.days) == (4, 14)
    class_day = 3 * class_hour + 21 * idle_hour
    assert planned.cost_over_dates == pytest.approx(4 * class_day + 10 * 24 * idle_hour)


def test_the_hub_keeps_the_placeholders_of_the_busiest_day():
    monday, tuesday = course("mon"), course("tue", class_days=frozenset({1}))
    apart = plan(inputs(monday, tuesday))
    alone = {c.slug: c.placeholders for c in apart.courses}
    assert apart.hub.placeholders == max(alone.values())
    together = plan(inputs(monday, replace(tuesday, class_days=monday.class_days)))
    assert together.hub.placeholders == sum(alone.values())
    assert set(together.hub.peak_courses) == {"mon", "tue"}


def test_more_nodes_than_the_pool_allows_is_a_warning():
    result = plan(inputs(course(students=400, peak_share=1), user_max_nodes=3))
    (warning,) = result.hub.warnings
    assert f"{result.hub.nodes_at_peak} user nodes" in warning and "maxNodes is 3" in warning


# --- prod ---------------------------------------------------------------------------------


def test_prod_placeholders_are_the_planners():
    planned = plan(inputs_for("prod")).hub.placeholders
    replicas = load("prod").values["scheduling"]["userPlaceholder"]["replicas"]
    assert replicas == planned, (
        f"config/prod.yaml has scheduling.userPlaceholder.replicas: {replicas}; "
        f"`coursehub capacity prod` says {planned}: set it to that"
    )


@pytest.mark.parametrize("deployment", ["staging", "prod"])
def test_a_student_waiting_for_a_new_node_gets_a_server_not_a_timeout(deployment):
    wait = plan(inputs_for(deployment)).node_ready_seconds
    timeout = load(deployment).values["singleuser"]["startTimeout"]
    assert timeout >= wait, (
        f"{deployment}: singleuser.startTimeout is {timeout} s but `coursehub capacity "
        f"{deployment}` expects a new node to be ready after {wait:.0f} s: raise "
        "startTimeout in config/common.yaml above it, or pull fewer images on a new node"
    )


def test_every_prod_course_is_planned():
    planned = {c.slug for c in plan(inputs_for("prod")).courses}
    assert planned == set(load("prod").values["custom"]["courses"])


def test_cli_prints_the_table(capsys):
    assert main(["prod"]) == 0
    out = capsys.readouterr().out
    replicas = load("prod").values["scheduling"]["userPlaceholder"]["replicas"]
    assert f"placeholders to keep: {replicas}" in out
    for slug in load("prod").values["custom"]["courses"]:
        assert slug in out


# --- what cannot be planned ---------------------------------------------------------------


def first_course() -> tuple[str, dict]:
    courses = load("prod").values["custom"]["courses"]
    slug = sorted(courses)[0]
    return slug, courses[slug]


def cli_error(capsys, *argv: str) -> str:
    assert main(["prod", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_a_guarantee_larger_than_a_node_is_refused():
    huge = course(requests=Requests(memory=64 * GIB, cpu=0.25))
    with pytest.raises(ConfigError) as refused:
        plan(inputs(huge))
    free = FACTS.allocatable(NODE)
    assert str(refused.value) == (
        "custom.courses.lab: a guarantee of 64.0 GiB memory and 0.25 CPU does not fit on one "
        f"made-up-4 node, which offers pods {free.memory / GIB:.1f} GiB and {free.cpu:.2f} CPU; "
        "choose a larger machine type or a smaller guarantee"
    )


def test_a_registry_guarantee_larger_than_a_node_is_refused(project_copy):
    slug, _ = first_course()
    project_copy.edit(
        f"deploy/courses/{slug}.yaml",
        lambda c: c["resources"]["memory"].update(guarantee="400G", limit="400G"),
    )
    with pytest.raises(ConfigError) as refused:
        plan(inputs_for("prod", root=project_copy.root))
    assert str(refused.value).startswith(f"custom.courses.{slug}: a guarantee of 372.5 GiB")
    assert "does not fit on one" in str(refused.value)


def test_a_negative_count_is_refused(capsys):
    slug, _ = first_course()
    err = cli_error(capsys, "--students", f"{slug}=-3")
    assert err == f"error: custom.courses.{slug}.planning.students: -3 is not a count " + (
        "(a whole number, 0 or more)\n"
    )


def test_a_negative_count_in_the_registry_is_refused(project_copy):
    slug, _ = first_course()
    project_copy.edit(f"deploy/courses/{slug}.yaml", lambda c: c["planning"].update(students=-3))
    with pytest.raises(ConfigError, match=f"deploy/courses/{slug}.yaml: planning.students: -3"):
        load("prod", root=project_copy.root)


def test_an_unknown_machine_type_is_refused(capsys):
    err = cli_error(capsys, "--machine-type", "n9-huge")
    known = ", ".join(sorted(machine_types()[0]))
    assert err == (
        "error: machine type 'n9-huge' is not in deploy/cluster/machine-types.yaml; "
        f"known: {known}\n"
    )


@pytest.mark.parametrize("key", ["start", "end"])
def test_a_course_without_dates_is_refused(key):
    slug, entry = first_course()
    undated = {k: v for k, v in entry.items() if k != key}
    with pytest.raises(ConfigError, match=f"custom.courses.{slug}: no {key} date"):
        course_demand(slug, undated)


def test_a_course_without_planning_is_refused():
    slug, entry = first_course()
    unplanned = {k: v for k, v in entry.items() if k != "planning"}
    with pytest.raises(ConfigError, match=f"custom.courses.{slug}.planning: students, "):
        course_demand(slug, unplanned)


@pytest.mark.parametrize("share", ["1.5", "-0.1"])
def test_a_share_outside_0_to_1_is_refused(capsys, share):
    slug, _ = first_course()
    err = cli_error(capsys, "--peak-share", f"{slug}={share}")
    assert err.startswith(f"error: custom.courses.{slug}.planning.peakShare: {float(share)!r}")
    assert "outside 0..1" in err


def test_an_unknown_course_is_refused(capsys):
    err = cli_error(capsys, "--students", "no-such-course=3")
    assert err.startswith("error: no course 'no-such-course' in prod; its courses: ")


def test_a_deployment_without_a_cluster_is_refused(capsys):
    assert main(["local"]) == 2
    err = capsys.readouterr().err
    assert err == "error: deployment 'local' runs on no cluster: nothing to plan\n"


def test_placeholders_follow_the_charts_sizing_rule():
    values = load("prod").values
    guarantees = placeholder_requests(values)
    assert guarantees.cpu == values["singleuser"]["cpu"]["guarantee"]
    own = {"requests": {"memory": "3Gi", "cpu": "500m"}}
    values["scheduling"]["userPlaceholder"]["resources"] = own
    assert placeholder_requests(values) == Requests(memory=3 * GIB, cpu=0.5)


def test_placeholders_that_request_nothing_are_refused():
    values = {"scheduling": {"userPlaceholder": {}}, "singleuser": {"memory": {}, "cpu": {}}}
    with pytest.raises(ConfigError) as refused:
        placeholder_requests(values)
    assert str(refused.value).startswith("scheduling.userPlaceholder: placeholders request nothing")


# --- the budget ---------------------------------------------------------------------------


def test_placeholders_the_budget_cannot_pay_for_are_not_kept_and_the_plan_says_so():
    wanted = plan(inputs())
    assert wanted.hub.placeholders == wanted.hub.placeholders_for_arrivals > 0
    enough = plan(inputs(budget_per_month=wanted.hub.cost_in_busiest_month))
    assert enough.hub.placeholders == wanted.hub.placeholders and not enough.hub.warnings
    budget = wanted.hub.cost_in_busiest_month - 0.01
    short = plan(inputs(budget_per_month=budget))
    kept = short.hub.placeholders
    assert kept < wanted.hub.placeholders_for_arrivals == short.hub.placeholders_for_arrivals
    assert short.hub.cost_in_busiest_month <= budget
    first, second = short.hub.warnings
    assert f"set scheduling.userPlaceholder.replicas: {kept}" in first
    assert f"raise budget.amount to {math.ceil(wanted.hub.cost_in_busiest_month)}" in first
    assert f"students past the first {kept} arriving" in second


def test_a_budget_too_small_for_the_classes_alone_says_so():
    result = plan(inputs(budget_per_month=1.0))
    assert result.hub.placeholders == 0
    assert any("even with no placeholders" in warning for warning in result.hub.warnings)


def test_prod_stays_within_its_clusters_budget():
    """prod's plan, with the placeholders its values keep, fits deploy/cluster/gke.yaml's budget."""
    prod = inputs_for("prod")
    cluster = read_yaml(ROOT / load("prod").spec["cluster"])
    _, about = machine_types()
    amount = cluster["budget"]["amount"]
    assert prod.budget_per_month == float(amount.removesuffix(about["currency"]))
    hub = plan(prod).hub
    assert hub.cost_in_busiest_month <= prod.budget_per_month
    assert load("prod").values["scheduling"]["userPlaceholder"]["replicas"] == hub.placeholders
