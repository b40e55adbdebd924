"""Plugins: named, versioned bundles of tools. Built-ins and third-party ones load the same way."""

from .base import Plugin

__all__ = ["Plugin"]
