"""Studio Platform: a self-hosted compliance evidence platform."""

__version__ = "0.1.0"
