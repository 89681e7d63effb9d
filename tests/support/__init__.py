"""Test helpers: evidence builders, workspaces that pass every shipped policy, tiny models."""
