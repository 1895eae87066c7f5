# A student turned away because concurrent_spawn_limit starts are pending gets a
# page saying they are queued, where they stand and about how long, which reloads
# itself (hub-config/templates/429.html, coursehub/queue.py). The templates folder
# is mounted beside this one, as every hub-config file is (hub.extraFiles).
from coursehub.queue import spawn_queue
from coursehub.values import CONFIG_DIR

c.JupyterHub.template_paths = [
    str(CONFIG_DIR / "templates"),
    *c.JupyterHub.get("template_paths", []),
]
c.JupyterHub.template_vars = {**c.JupyterHub.get("template_vars", {}), "spawn_queue": spawn_queue}
