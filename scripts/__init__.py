"""coursehub's tools, in rooms by job; `coursehub <group> <verb>` (cli.py) runs them.

ROOMS is the one table of the rooms, in order: a room's modules import only from
the rooms it lists (and from themselves). tests/book/test_rooms.py reads every
module's imports and fails on any other; the architecture chapter draws this
table and the imports the code has (book/architecture_diagram.py).
"""

# room -> (the rooms it may import from, why the room exists)
ROOMS: dict[str, tuple[tuple[str, ...], str]] = {
    "config": (
        (),
        "what a deployment is: its layers merged and checked, the pinned chart, secrets, "
        "and the hub API client every other room uses",
    ),
    "local": (
        ("config",),
        "the same hub on this machine: the runner, its spawner and server, the stand-ins "
        "for GitHub and Kubernetes, PostgreSQL, the offline pod builder",
    ),
    "deploy": (
        ("config",),
        "getting a deployment onto a cluster: GKE, cluster services, hubploy, the workflow "
        "and registry checks, capacity, the rehearsal and its stand-ins",
    ),
    "lifecycle": (
        # the home archive builds a member's pod offline, as the hub would
        ("config", "local"),
        "a course's life: registry states, the dispatcher, content checks, archives, mail, "
        "backups and status",
    ),
    "measure": (
        ("config", "local"),
        "how the local hub behaves under load: a class arriving, a restart, culling, "
        "profiles and metrics",
    ),
    "book": (
        ("config", "local", "deploy", "lifecycle", "measure"),
        "what the book needs: diagrams drawn from the code, the browser, example content",
    ),
}
