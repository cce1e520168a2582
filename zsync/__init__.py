"""``python -m zsync``: the same as the ``zsync`` command."""
