"""The package version, read by every cache key and provenance record."""

__version__ = "0.1.0"
