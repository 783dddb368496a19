"""BIRD 2 configuration renderer and status."""
