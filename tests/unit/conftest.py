"""Unit tests need no infrastructure."""
