"""Running the hub on this machine: the runner, its spawner, the stand-ins."""
