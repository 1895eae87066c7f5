"""The wildcard certificate a deployment's proxy serves, made by cert-manager through DNS-01.

Staging and prod put each user's server on its own origin, `<user>.<host>`
(`subdomain_host`), so the proxy serves TLS from a Secret holding a certificate for
`<host>` and `*.<host>` (`proxy.https.type: secret`). Let's Encrypt certifies a
wildcard name only through the DNS-01 challenge, which the chart's own autohttps
(HTTP-01) cannot answer. So `coursehub-cluster up` installs cert-manager (the
chart, pinned in deploy/cluster/gke.yaml `certificates`), then applies:

- a `ClusterIssuer` for Let's Encrypt whose DNS-01 solver writes the challenge
  records into the project's Cloud DNS, as the Google service account
  `certificates.serviceAccount` (`coursehub-gke plan` makes it, with
  roles/dns.admin, and lets cert-manager's Kubernetes service account act as it
  through Workload Identity: no key anywhere);
- a `Certificate` for every host of `proxy.https.hosts` and its wildcard, into the
  Secret `proxy.https.secret.name`, in the deployment's namespace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coursehub_tools.deployconfig import Deployment
from coursehub_tools.yamlfiles import ROOT, read_yaml

ACME_SERVER = "https://acme-v02.api.letsencrypt.org/directory"
ISSUER = "letsencrypt-dns01"
CERTIFICATE = "coursehub-wildcard"
# cert-manager's chart names its controller's Kubernetes service account after the release.
RELEASE = "cert-manager"
# ref: cert-manager's "Google CloudDNS" page (Workload Identity): the controller's
# Kubernetes service account is annotated with the Google service account it acts as.
GKE_ACCOUNT_ANNOTATION = "iam.gke.io/gcp-service-account"


def cluster_spec(deployment: Deployment, root: Path = ROOT) -> dict[str, Any]:
    return read_yaml(root / deployment.spec["cluster"], root)


def wanted(deployment: Deployment, root: Path = ROOT) -> bool:
    """True when the proxy serves TLS from a Secret on a GKE cluster with `certificates`."""
    https = deployment.values["proxy"].get("https", {})
    if not https.get("enabled") or https.get("type") != "secret":
        return False
    spec = cluster_spec(deployment, root)
    return spec.get("provider") == "gke" and "certificates" in spec


def google_account(spec: dict[str, Any]) -> str:
    name = spec["certificates"]["serviceAccount"]
    return f"{name}@{spec['project']}.iam.gserviceaccount.com"


def kubernetes_member(spec: dict[str, Any]) -> str:
    """cert-manager's Kubernetes service account, as Workload Identity names it in IAM."""
    namespace = spec["certificates"]["certManager"]["namespace"]
    return f"serviceAccount:{spec['project']}.svc.id.goog[{namespace}/{RELEASE}]"


def install_command(spec: dict[str, Any]) -> list[str]:
    """helm's install of the pinned cert-manager chart, its CRDs included, acting as the
    DNS-01 Google service account."""
    chart = spec["certificates"]["certManager"]
    annotation = GKE_ACCOUNT_ANNOTATION.replace(".", "\\.")
    return [
        "helm", "upgrade", "--install", RELEASE, chart["chart"],
        "--repo", chart["repository"], "--version", chart["version"],
        "--namespace", chart["namespace"], "--create-namespace",
        "--set", "crds.enabled=true",
        "--set-string", f"serviceAccount.annotations.{annotation}={google_account(spec)}",
        "--wait", "--timeout", "5m",
    ]  # fmt: skip


def objects(deployment: Deployment, root: Path = ROOT) -> list[dict[str, Any]]:
    """The ClusterIssuer and the Certificate; [] when the deployment wants none."""
    if not wanted(deployment, root):
        return []
    spec = cluster_spec(deployment, root)
    https = deployment.values["proxy"]["https"]
    hosts = list(https["hosts"])
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": ISSUER},
        "spec": {"acme": {
            "server": ACME_SERVER,
            "email": spec["certificates"]["email"],
            "privateKeySecretRef": {"name": f"{ISSUER}-account"},
            # Ambient credentials: the Google service account of Workload Identity.
            "solvers": [{"dns01": {"cloudDNS": {"project": spec["project"]}}}],
        }},
    }  # fmt: skip
    certificate = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": CERTIFICATE, "namespace": deployment.spec["namespace"]},
        "spec": {
            "secretName": https["secret"]["name"],
            "dnsNames": hosts + [f"*.{host}" for host in hosts],
            "issuerRef": {"name": ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
    }
    return [issuer, certificate]


def gcloud_commands(spec: dict[str, Any]) -> list[list[str]]:
    """The DNS-01 identity: the Google service account, roles/dns.admin on the project
    (Cloud DNS's zones are the project's), and cert-manager's Workload Identity binding."""
    project, account = spec["project"], google_account(spec)
    return [
        ["gcloud", "iam", "service-accounts", "create", spec["certificates"]["serviceAccount"],
         "--project", project],
        ["gcloud", "projects", "add-iam-policy-binding", project,
         f"--member=serviceAccount:{account}", "--role=roles/dns.admin"],
        ["gcloud", "iam", "service-accounts", "add-iam-policy-binding", account,
         "--role=roles/iam.workloadIdentityUser", f"--member={kubernetes_member(spec)}",
         "--project", project],
    ]  # fmt: skip
