"""Training: one loop for every model fabula trains from token blocks."""
