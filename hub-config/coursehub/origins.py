"""Where users' servers and the hub's services are served once subdomain_host is set.

With JupyterHub.subdomain_host each user's server is on its own host,
<user>.<hub's domain>: a page a student's server serves (their code) is
another origin than the hub's, so it cannot read the hub's pages or call its
API with the session of an instructor who opens it. JupyterHub puts services
on hosts of their own too (<name>--service.<domain>); ours are the
deployment's own code, trusted as the hub is, and their links (the
enrollment service's invite links, which the GitHub login checks as paths on
the hub: coursehub/github.py) stay paths on the hub's host.
"""

from __future__ import annotations

from jupyterhub.utils import subdomain_hook_idna


def subdomain_hook(name: str, domain: str, kind: str) -> str:
    """JupyterHub's default ('idna') for users' servers; the hub's own domain for services.

    ref: jupyterhub 5.5 app.py JupyterHub.subdomain_hook (name, domain, kind).
    """
    if kind == "user":
        return subdomain_hook_idna(name, domain, kind)
    return domain
