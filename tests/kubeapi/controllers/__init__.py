"""Reusable scripted controllers; scenarios compose them."""

from .base import Controller, Dispatcher

__all__ = ["Controller", "Dispatcher"]
