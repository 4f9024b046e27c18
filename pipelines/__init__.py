"""Prefect flows, source formats, Label Studio review and the CLI."""

import os

# Idle OpenMP threads sleep instead of spinning. Units run in threads beside torch's OpenMP teams (one team
# per calling thread); spinning teams starved the threads doing the work, stalling a CPU run for minutes.
# Set before torch loads (it reads this once); a value in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
