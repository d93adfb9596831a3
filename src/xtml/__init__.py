"""xtml: X-ray Timing Machine Learning."""

__version__ = "0.1.0"
