"""Companion BaaS: a self-hosted backend for AI agents and companions."""

__version__ = "0.1.0"
