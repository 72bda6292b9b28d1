"""Multi-process tests: `jax.distributed` runs on one machine (see `harness`)."""
