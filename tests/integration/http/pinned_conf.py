"""A gunicorn config module that pins workers like the gateway does (``-c python:...``)."""

from gateway.http.server import post_fork

__all__ = ["post_fork"]
