"""What trains: the engines, the random streams, μP's parametrization and per-layer
diagnostics."""
