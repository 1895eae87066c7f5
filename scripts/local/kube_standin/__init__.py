"""A local stand-in for the Kubernetes API server and one kubelet. It is NOT Kubernetes.

- store.py: the objects, their resource versions and the change history watches read;
- api.py: the HTTP API the kubernetes client calls (lists, watches, Status errors);
- kubelet.py: runs each pod's containers as local processes and reports them.

    python -m coursehub_tools.local.kube_standin.api --port 8443 --namespace ns --state-dir dir
"""
