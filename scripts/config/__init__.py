"""Reading the deployments, their layers, the chart, secrets, and talking to a hub."""
