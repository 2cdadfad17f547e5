"""A Kubernetes API emulator for tests: real HTTP on 127.0.0.1 for the real client."""

from .emulator import KubeAPI
from .errors import ApiError
from .faults import Fault, Faults, Request, RequestLog

__all__ = ["ApiError", "Fault", "Faults", "KubeAPI", "Request", "RequestLog"]
