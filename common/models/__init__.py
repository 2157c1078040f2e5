"""Models: the T-RecX layers, the prior methods, the output contract, the variant registry, warm starts, FLOPs."""
