"""zsync core: read the directory, read Zivver, plan, guard, apply, remember.

This package never imports a user interface (textual, rich); both front ends
(the TUI and ``zsync --headless``) drive it through :mod:`zsync_core.session`.
"""

__version__ = "0.1.0"
