"""Fine-tuning methods: one small module each, registered in `registry.py`."""

from .base import Method, MethodContext
from .registry import METHODS, get_method, register

__all__ = ["METHODS", "Method", "MethodContext", "get_method", "register"]
