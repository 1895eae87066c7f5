"""How the hub behaves under load: arrival, restart, culling, profiles."""
