"""initbench's version: written here only (pyproject.toml reads it; run folders, weights
files and ``initbench --version`` say it)."""

VERSION = "0.1.0"
