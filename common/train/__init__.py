"""Training: the joint-loss engine, its callbacks."""
