"""The model organism: a small model pre-trained on text whose AI fiction we control."""
