# The local hub's config: the pinned chart's own jupyterhub_config.py, run over the
# hub pod's files laid out in <state>/etc/jupyterhub (scripts/localhub/layout.py),
# then what this machine cannot have, swapped. Nothing else.
c = get_config()  # JupyterHub provides get_config and load_subconfig
import sys

from coursehub_tools.localhub.facts import LocalFacts
from coursehub_tools.localhub.layout import HUB_PORT
from coursehub_tools.localhub.spawner import services_share_the_clock
from coursehub_tools.localhub.supervisor import free_port

here = LocalFacts.read()
chart_config = here.pod_dir / "jupyterhub_config.py"
if not chart_config.is_file():  # load_subconfig would skip it silently
    raise SystemExit(f"{chart_config} is missing: LocalHub.prepare lays it out")
load_subconfig(str(chart_config))
loopback = "http://127.0.0.1"
# Addresses: no Services or pod network here; every process listens on loopback.
c.JupyterHub.bind_url = f"{loopback}:{here.public_port}{c.JupyterHub.get('base_url', '/')}"
c.JupyterHub.hub_bind_url = c.JupyterHub.hub_connect_url = f"{loopback}:{here.hub_port}"
# The proxy: not started by the hub, as in the chart, but a process beside it
# (LocalHub.proxy_command), its API on loopback rather than behind a Service.
c.ConfigurableHTTPProxy.api_url = f"{loopback}:{here.proxy_api_port}"
c.JupyterHub.pid_file = str(here.state_dir / "jupyterhub.pid")
# The database stays the chart's: sqlite-pvc's URL is relative to the state folder.

# The spawner: local processes (spawner.py), children of the hub that stop with
# it, given what the chart set for pods. A `local-kube` hub keeps the chart's
# KubeSpawner, which finds the Kubernetes stand-in through $KUBECONFIG.
if here.backend == "local":
    c.JupyterHub.spawner_class = here.spawner_class
    c.JupyterHub.cleanup_servers = True
    for trait in ("start_timeout", "environment", "mem_limit", "cpu_limit"):
        if trait in c.KubeSpawner:
            c.LocalCourseSpawner[trait] = c.KubeSpawner[trait]
    c.LocalCourseSpawner.home_dir_template = str(here.state_dir / "homes" / "{username}")
    c.LocalCourseSpawner.shared_root = str(here.state_dir / "shared")
    c.LocalCourseSpawner.hook_log_dir = str(here.state_dir / "hook-logs")
if here.running_as_root:  # CI containers: jupyter-server refuses root unless told
    c.Spawner.args = ["--ServerApp.allow_root=True"]

# Services the hub starts run with this Python, reach the hub on its loopback
# port, listen on free loopback ports, and carry the runner's marker.
for service in c.JupyterHub.services:
    if service.get("command"):
        chart_hub, local_hub = f"http://localhost:{HUB_PORT}", f"{loopback}:{here.hub_port}"
        service["command"] = [part.replace(chart_hub, local_hub) for part in service["command"]]
        if service["command"][0] == "python3":
            service["command"][0] = sys.executable
        service["environment"] = {**service.get("environment", {}), **here.marker_env}
    if service.get("url"):
        service["url"] = f"{loopback}:{free_port()}"
services_share_the_clock(c.JupyterHub.services)
# A token for LocalHub.api (tests, the book); on a cluster an operator has their own.
c.JupyterHub.services.append({"name": "local-operator", "api_token": here.operator_token})
c.JupyterHub.load_roles.append(
    {"name": "local-operator", "scopes": here.operator_scopes, "services": ["local-operator"]}
)
