"""Test fixtures (pytest plugin module)."""
