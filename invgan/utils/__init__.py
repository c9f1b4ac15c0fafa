"""Helpers shared across the library."""
