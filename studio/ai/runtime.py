"""Building the AI service from settings: the one place that picks embedder and index."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from studio.ai.controls import ControlSource, OscalControlSource
from studio.ai.embedders import Embedder, EmbedderStatus, choose_embedder
from studio.ai.service import AiService, EvidenceTextSource
from studio.ai.vectors import SqlVectorIndex, VectorIndex
from studio.db.engine import Database


class AiSettings(BaseSettings):
    """STUDIO_AI_* settings; none is needed."""

    model_config = SettingsConfigDict(env_prefix="STUDIO_AI_", extra="ignore")

    embedder: Literal["auto", "neural", "statistical"] = "auto"
    tfidf_dim: int = Field(default=2048, ge=64, le=65536)
    suggestions: int = Field(default=5, ge=1, le=20)
    # "key=path" pairs, comma-separated: OSCAL catalogs to read controls from until the
    # frameworks domain provides its own ControlSource.
    oscal_catalogs: str = ""

    def catalogs(self) -> dict[str, Path]:
        pairs = [p.split("=", 1) for p in self.oscal_catalogs.split(",") if "=" in p]
        return {k.strip(): Path(v.strip()).expanduser() for k, v in pairs}


def build_ai(db: Database, data_dir: Path, settings: AiSettings | None = None,
             controls: ControlSource | None = None,
             text_source: EvidenceTextSource | None = None) -> AiService:
    """The AI service; its embedder and index are built on first use, not here."""
    ai = settings or AiSettings()
    source = controls or OscalControlSource(ai.catalogs())

    def build() -> tuple[Embedder, EmbedderStatus, VectorIndex]:
        corpus = (c.text for f in source.frameworks() for c in source.controls(f))
        embedder, status = choose_embedder(ai.embedder, data_dir / "ai" / "tfidf-vocabulary.json",
                                           corpus, tfidf_dim=ai.tfidf_dim)
        return embedder, status, SqlVectorIndex(db.engine, embedder.name, embedder.dim)

    return AiService(db, source, build, text_source=text_source, suggestions=ai.suggestions)
