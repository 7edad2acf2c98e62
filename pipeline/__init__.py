"""Generation of the synthetic grain-boundary reconstruction library (no TensorFlow here)."""

__version__ = "0.1.0"
