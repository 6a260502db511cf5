"""Zoos of models with known answers: a demo zoo to try the CLI on, circuits planted (exact
or as training leaves them) in random hosts with their ground truth, and trained networks
for the census."""
