"""rating-engine: a call-rating stream processor."""

__version__ = "0.1.0"
