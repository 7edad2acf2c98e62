"""Scoring restorations: metric functions, classical baselines, the evaluate command."""
