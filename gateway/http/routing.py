"""Longest-prefix route matching on segment boundaries, precomputed once.

::

    table = RouteTable([Route("/", "http", upstream=u1), Route("/api", "http", upstream=u2)])
    match = table.match("/api/users")      # route /api, script_name "/api", path_info "/users"
    table.match("/apix")                   # route "/" (prefixes match whole segments only)

Matching walks the path's own prefixes from longest to shortest, one dict
lookup each, so its cost depends on the path's depth, not on the number of
routes. The path must already be checked by :mod:`gateway.http.paths`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway.http.config import Route


@dataclass(frozen=True, slots=True)
class Match:
    """A matched route with the WSGI split of the path around its mount."""

    route: Route
    script_name: str
    path_info: str


class RouteTable:
    """The routes of one gateway, indexed by prefix."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._all = list(routes)
        self._by_prefix: dict[str, Route] = {r.prefix: r for r in self._all if r.prefix != "/"}
        self._root = next((r for r in self._all if r.prefix == "/"), None)

    def __len__(self) -> int:
        return len(self._all)

    def match(self, path: str) -> Match | None:
        """The route with the longest prefix that ``path`` starts with, segment-wise."""
        by_prefix = self._by_prefix
        candidate = path[:-1] if len(path) > 1 and path.endswith("/") else path
        while candidate:
            route = by_prefix.get(candidate)
            if route is not None:
                return Match(route, candidate, path[len(candidate):])
            candidate = candidate[:candidate.rfind("/")]
        if self._root is not None:
            return Match(self._root, "", path)
        return None
