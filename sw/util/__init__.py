"""Small helpers shared across the stages: console output, file writing, tool subprocesses."""
