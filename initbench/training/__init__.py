"""What trains: the engines, the random streams, μP's parametrization, per-layer diagnostics, and the plan (chunks of jobs into a store)."""
