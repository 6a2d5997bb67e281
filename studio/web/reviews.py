"""The review queue: evidence waiting for the caller's decision across all their projects."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from studio.web.routes import PAGE_SIZE, PageRoute, _c, _page_url, _render, _require

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/reviews")
def review_queue(request: Request, order: str = "newest", cursor: str | None = None) -> Response:
    """Newest or oldest first; the service refuses (403) anyone who reviews in no project."""
    principal = _require(request)
    oldest = order == "oldest"
    items, next_cursor, total = _c(request).evidence.review_queue(
        principal, oldest_first=oldest, cursor=cursor, limit=PAGE_SIZE)
    order = "oldest" if oldest else "newest"
    return _render(request, "reviews.html", nav="reviews", items=items, total=total, order=order,
                   next_url=_page_url("/reviews", {"order": order}, next_cursor),
                   first_url=f"/reviews?order={order}" if cursor else None)
