"""A Zivver-compatible SCIM server for tests, the demo, and trying a profile safely."""

from .app import Organization, create_app
from .server import EmulatorServer

__all__ = ["EmulatorServer", "Organization", "create_app"]
