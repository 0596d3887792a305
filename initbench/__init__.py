"""initbench: compare how initial weights decide how a network trains."""

__version__ = "0.1.0"
