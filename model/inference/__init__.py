"""Restoring users' own micrographs: image reading, tiled inference, the predict command."""
