"""Which methods a path answers, as the OpenAPI document lists them: `OPTIONS` answers with
`Allow`, any other method a path does not take answers `405` with `Allow`.

Starlette routes each (path, method) pair on its own, so left alone it gets two things wrong:
a `405` lists only the methods of the first route whose path matched, and a literal path that a
templated one also matches (`/mappings/derive` and `/mappings/{mapping_id}`) goes to the
templated route for the methods the literal path lacks (`PATCH /mappings/derive` was validated
as a mapping id and answered `400`). Here, as in OpenAPI, a concrete path is matched before a
templated one, and a path's methods are those of every route with that path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class _Path:
    regex: re.Pattern[str]
    methods: frozenset[str]
    params: int


class MethodTable:
    """The methods of every routed path, built from the app's routes (and rebuilt if routes
    are added later)."""

    def __init__(self) -> None:
        self._count = -1
        self._paths: dict[str, _Path] = {}
        self._literals: dict[str, frozenset[str]] = {}
        self._shadowed: dict[str, frozenset[str]] = {}

    def _refresh(self, routes: list[BaseRoute]) -> None:
        if len(routes) == self._count:
            return
        grouped: dict[str, tuple[re.Pattern[str], set[str], int]] = {}
        # FastAPI keeps included routers as such; their routes, with the prefix, come from
        # the same walk its OpenAPI generation makes.
        for route in iter_route_contexts(routes):
            methods, path = route.methods, route.path_format
            regex = getattr(route, "path_regex", None)
            if not isinstance(route.original_route, Route) or not (methods and path and regex):
                continue  # mounts and the method guard itself
            params = len(getattr(route, "param_convertors", None) or {})
            entry = grouped.setdefault(path, (regex, set(), params))
            entry[1].update(m.upper() for m in methods)
        self._paths = {
            p: _Path(r, frozenset(m | {"OPTIONS"}), n) for p, (r, m, n) in grouped.items()
        }
        self._literals = {p: e.methods for p, e in self._paths.items() if e.params == 0}
        # Literal paths that a templated path matches too: there the templated routes must
        # not answer the literal path's missing methods.
        self._shadowed = {
            p: methods for p, methods in self._literals.items()
            if any(e.params and e.regex.match(p) for e in self._paths.values())
        }
        self._count = len(routes)

    def allowed(self, routes: list[BaseRoute], path: str) -> frozenset[str] | None:
        """The methods `path` answers (OPTIONS included), or None if no route has the path."""
        self._refresh(routes)
        literal = self._literals.get(path)
        if literal is not None:
            return literal
        matching = [e for e in self._paths.values() if e.regex.match(path)]
        if not matching:
            return None
        fewest = min(e.params for e in matching)
        return frozenset().union(*(e.methods for e in matching if e.params == fewest))

    def refuses(self, routes: list[BaseRoute], path: str, method: str) -> bool:
        """Whether a literal path lacks `method` while a templated route would take it."""
        self._refresh(routes)
        methods = self._shadowed.get(path)
        return methods is not None and method not in methods


def route_path(scope: Scope) -> str:
    """The path routes match against: the request path without the app's root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root + "/") else path


def allow_header(methods: frozenset[str]) -> str:
    return ", ".join(sorted(methods))


class MethodGuard(BaseRoute):
    """Tried before every other route: answers `OPTIONS`, and `405` where a templated route
    would otherwise take a method meant for a literal path. Costs one dictionary look-up for
    any other request."""

    def __init__(self, table: MethodTable, answer_options: Any) -> None:
        self.table = table
        self.answer_options = answer_options

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        routes = scope["app"].router.routes
        path = route_path(scope)
        method = scope["method"]
        if method == "OPTIONS":
            allowed = self.table.allowed(routes, path)
            return (Match.FULL, {}) if allowed is not None else (Match.NONE, {})
        if self.table.refuses(routes, path, method):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = self.table.allowed(scope["app"].router.routes, route_path(scope))
        assert allowed is not None
        if scope["method"] == "OPTIONS":
            await self.answer_options(scope, allowed)(scope, receive, send)
            return
        raise HTTPException(405, headers={"Allow": allow_header(allowed)})
