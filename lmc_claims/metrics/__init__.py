"""Measurements: interpolation and barriers, distances, spectra."""
