"""Getting a deployment onto a cluster: GKE, cluster services, hubploy, checks."""
