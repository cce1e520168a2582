"""zsync's front ends: the terminal UI and the headless daily run (presentation only)."""
