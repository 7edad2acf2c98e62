"""Grain statistics of restored boundary images: the `measure` command (docs/measure.md)."""
