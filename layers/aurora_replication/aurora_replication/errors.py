"""Errors that cross module boundaries."""

from __future__ import annotations


class BadInputError(ValueError):
    """Input (a run request, a chunk message, a setting) that was rejected before any write."""
