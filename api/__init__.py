"""The REST service: ``create_app(settings)`` builds the FastAPI application (``curator serve`` runs it)."""

from api.app import create_app

__all__ = ["create_app"]
