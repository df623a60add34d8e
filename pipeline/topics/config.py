"""The ``topics:`` section of a run config (see ``docs/topics.md``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TopicsConfig"]


class TopicsConfig(BaseModel):
    """Emergent topics (``coder.topics.v1``) fitted in every run after the codes are combined.

    The seed is the run's ``seed``. Everything else is here; unknown keys are errors.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="fit topics in `alliance run` (topics.parquet, topics.html)")
    speakers: list[Literal["client", "therapist", "interviewer", "unknown"]] | None = Field(
        default_factory=lambda: ["client"],
        description="speaker roles the topics are fitted on and assigned to (feedback responses are client "
        "turns); null: every segment")
    embedder: str = Field("embed.static.v1", pattern=r"^embed\.[a-z0-9_]+\.v\d+$",
                          description="embedding backend (shared cache)")
    reducer: Literal["pca", "umap"] = Field("pca", description="pca: deterministic and fast; umap: seeded")
    n_components: int = Field(10, ge=1, le=200, description="dimensions after reduction")
    clusterer: Literal["kmeans", "hdbscan"] = Field("kmeans", description="kmeans: fixed number of topics")
    n_topics: int = Field(20, ge=1, le=500, description="topics for kmeans (capped by min_topic_size)")
    min_topic_size: int = Field(10, ge=2, le=10_000, description="smallest topic")
    outliers: Literal["embeddings", "c-tf-idf", "distributions", "none"] = Field(
        "embeddings", description="how segments in topic -1 are reassigned (hdbscan)")
    outlier_threshold: float = Field(0.0, ge=0.0, le=1.0)
    multi_topic_threshold: float | None = Field(0.3, gt=0.0, le=1.0,
                                                description="share a further topic needs; null: one topic")
    map_threshold: float = Field(0.35, ge=-1.0, le=1.0,
                                 description="centred cosine a topic needs to its nearest code to carry it")
    seed_words: bool = Field(True, description="boost the codebook's words in the topic terms")
    top_n_words: int = Field(10, ge=1, le=50)
    quotes: int = Field(5, ge=0, le=20, description="representative de-identified quotes per candidate theme")
    html: bool = Field(True, description="write topics.html")

    def coder_params(self, seed: int) -> dict[str, Any]:
        """Parameters of :class:`~pipeline.coders.topics.TopicCoder` for this section and the run seed."""
        return {"backend": self.embedder, "speakers": None if self.speakers is None else tuple(self.speakers),
                "reducer": self.reducer, "n_components": self.n_components, "clusterer": self.clusterer,
                "n_topics": self.n_topics, "min_topic_size": self.min_topic_size, "outliers": self.outliers,
                "outlier_threshold": self.outlier_threshold, "multi_topic_threshold": self.multi_topic_threshold,
                "map_threshold": self.map_threshold, "seed_words": self.seed_words,
                "top_n_words": self.top_n_words, "random_state": seed}
