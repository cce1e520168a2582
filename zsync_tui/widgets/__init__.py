"""Reusable pieces of the terminal UI."""
