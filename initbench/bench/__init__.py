"""How fast initbench trains: its cases and their interleaved timing, the profile's
breakdown, the peers, and the lesson's own pipeline."""
