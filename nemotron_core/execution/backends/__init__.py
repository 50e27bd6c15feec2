"""Job backends: local process groups, Slurm, Ray. Each reads its own real state."""
