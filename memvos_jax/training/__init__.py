"""Training system: see the training issue (not implemented yet)."""
