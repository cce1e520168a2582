"""A Zivver-compatible SCIM server for tests, the demo, and trying a profile safely."""

from .app import create_app
from .organization import Fault, Organization
from .server import EmulatorServer

__all__ = ["EmulatorServer", "Fault", "Organization", "create_app"]
