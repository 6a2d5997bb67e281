"""The pages, installed on the app: sign-in, dashboard and users (routes.py), projects,
evidence and the review queue, each in its own module."""

from __future__ import annotations

from fastapi import FastAPI

from studio.web import evidence, projects, reviews, routes

# Page forms that carry files: the body limit lets them through at the upload size
# (each file is still capped at STUDIO_MAX_UPLOAD_BYTES as it streams to storage).
UPLOAD_PATHS = ("/projects/*/evidence", "/evidence/*/files")


def upload_body_limit(max_upload_bytes: int) -> int:
    """The largest body an upload form may send: every file at the limit, plus the fields."""
    return max_upload_bytes * evidence.MAX_FILES + 1024 * 1024


def install(api: FastAPI) -> None:
    """Mount the pages and their static files on the app."""
    routes.install(api)
    for module in (projects, evidence, reviews):
        api.include_router(module.router)
