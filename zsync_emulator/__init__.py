"""A Zivver-compatible SCIM server for tests, the demo, and trying a profile safely."""

from .app import Fault, Organization, create_app
from .server import EmulatorServer

__all__ = ["EmulatorServer", "Fault", "Organization", "create_app"]
