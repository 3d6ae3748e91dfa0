"""The HTTP service: `create_app(settings)` builds the FastAPI app."""

from companion.api._app import create_app

__all__ = ["create_app"]
