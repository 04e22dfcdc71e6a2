"""A seeded, deterministic simulator for the Raft core (see scenario.py for a run's shape)."""
