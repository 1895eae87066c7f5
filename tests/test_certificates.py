"""The wildcard certificate staging and prod serve users' servers from (scripts/certificates.py):
cert-manager as pinned, a DNS-01 ClusterIssuer on Cloud DNS, a Certificate for each host and its
wildcard into the Secret the proxy reads, and the Google account it acts as, made by
`coursehub-gke plan/apply` and bound by Workload Identity."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from coursehub_tools import certificates, gcloud_standin, gke
from coursehub_tools.deployconfig import load
from coursehub_tools.yamlfiles import ROOT

pytestmark = pytest.mark.unit

GKE = ("staging", "prod")


def by_kind(objects: list[dict], kind: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


@pytest.mark.parametrize("name", GKE)
def test_a_certificate_for_each_host_and_its_wildcard_into_the_proxys_secret(name):
    deployment = load(name)
    https = deployment.values["proxy"]["https"]
    certificate = by_kind(certificates.objects(deployment), "Certificate")
    assert certificate["metadata"]["namespace"] == deployment.spec["namespace"]
    assert certificate["spec"]["secretName"] == https["secret"]["name"] == "coursehub-wildcard-tls"
    hosts = https["hosts"]
    assert certificate["spec"]["dnsNames"] == hosts + [f"*.{host}" for host in hosts]
    # users' servers are on <user>.<host>: the wildcard covers subdomain_host's host
    subdomain_host = deployment.values["hub"]["config"]["JupyterHub"]["subdomain_host"]
    assert subdomain_host.removeprefix("https://") in hosts
    assert certificate["spec"]["issuerRef"]["name"] == certificates.ISSUER


@pytest.mark.parametrize("name", GKE)
def test_the_issuer_answers_dns01_in_the_projects_cloud_dns(name):
    deployment = load(name)
    spec = certificates.cluster_spec(deployment)
    issuer = by_kind(certificates.objects(deployment), "ClusterIssuer")
    assert "namespace" not in issuer["metadata"], "a ClusterIssuer is cluster-wide"
    acme = issuer["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    (solver,) = acme["solvers"]
    assert solver == {"dns01": {"cloudDNS": {"project": spec["project"]}}}, "no key: ambient"


def test_no_certificate_where_the_proxy_gets_its_own():
    for name in ("kind", "local"):
        assert certificates.objects(load(name)) == []


def test_cert_manager_is_installed_as_pinned_acting_as_the_dns01_account():
    spec = yaml.safe_load((ROOT / "deploy/cluster/gke.yaml").read_text())
    command = certificates.install_command(spec)
    pinned = spec["certificates"]["certManager"]
    assert command[:6] == ["helm", "upgrade", "--install", "cert-manager", "cert-manager", "--repo"]
    assert command[command.index("--version") + 1] == pinned["version"]
    assert command[command.index("--namespace") + 1] == pinned["namespace"]
    assert "crds.enabled=true" in command
    annotation = "serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account="
    assert f"{annotation}coursehub-dns01@coursehub-example.iam.gserviceaccount.com" in command


def test_the_plan_makes_the_dns01_account_with_dns_admin_bound_to_cert_manager():
    sections = dict(gke.commands("prod"))
    commands = sections["the certificates' DNS-01 identity (cert-manager)"]
    account = "coursehub-dns01@coursehub-example.iam.gserviceaccount.com"
    assert ["gcloud", "projects", "add-iam-policy-binding", "coursehub-example",
            f"--member=serviceAccount:{account}", "--role=roles/dns.admin"] in commands  # fmt: skip
    (binding,) = [c for c in commands if "roles/iam.workloadIdentityUser" in " ".join(c)]
    assert "--member=serviceAccount:coursehub-example.svc.id.goog[cert-manager/cert-manager]" in (
        binding
    )


def test_the_gcloud_standin_refuses_the_binding_before_the_account_exists(tmp_path):
    spec = yaml.safe_load((ROOT / "deploy/cluster/gke.yaml").read_text())
    create, grant, bind = certificates.gcloud_commands(spec)
    with gcloud_standin.installed(tmp_path / "gcloud", spec, root=ROOT) as env:
        refused = subprocess.run(grant, env=env, capture_output=True, text=True, check=False)
        assert refused.returncode != 0 and "NOT_FOUND" in refused.stderr
        for command in (create, grant, bind):
            subprocess.run(command, env=env, capture_output=True, text=True, check=True)
