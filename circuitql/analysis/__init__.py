"""What circuitql says about models and zoos once they are indexed: comparisons of two
networks, censuses of a circuit over a zoo, and per-model degeneracy and sparse bases."""
