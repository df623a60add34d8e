"""TopicCoder: emergent themes with BERTopic over the shared, cached embeddings.

A codebook only finds what the researcher expected; clients also raise themes nobody planned for.
This coder clusters the segments (by default only client turns, which include feedback responses),
names each cluster with its c-TF-IDF terms, and then asks the codebook which clusters it already
knows:

- **Stages** (BERTopic's swappable parts): our cached embeddings (``embeddings=``, BERTopic never loads
  a model) -> a reducer (``pca`` by default: PCA with the full SVD, deterministic; or ``umap``, seeded) ->
  a clusterer (``kmeans`` by default, seeded; or ``hdbscan``) -> c-TF-IDF terms, with the codebook's
  words as seed words (``ClassTfidfTransformer(seed_words=...)``) so code vocabulary ranks higher.
  PCA + KMeans is the default because it is deterministic and fast (no numba compilation, which costs
  about 52 s per fresh process for UMAP above 4,096 documents), and because HDBSCAN on these short
  sentences leaves most segments in topic -1 (85% of the demo's client segments); see ``bench/topics.py``.
- **Outliers**: with ``hdbscan``, segments in topic -1 are reassigned with BERTopic's
  ``reduce_outliers`` (``outliers: embeddings | c-tf-idf | distributions``; ``outlier_threshold``);
  KMeans leaves none. ``outlier_share_before_`` and ``outlier_share_after_`` record both shares.
- **Several topics per segment**: BERTopic's ``approximate_distribution`` (token windows against the
  topics' c-TF-IDF); every further topic with a share of at least ``multi_topic_threshold`` is added.
- **Codebook guidance (zero-shot mapping)**: each code's prototype is the mean embedding of its
  definition, criteria and examples (as in ``coder.similarity.v1``); each topic's is the mean embedding
  of its segments. Both are centred on the corpus mean; a topic whose cosine to its nearest code
  reaches ``map_threshold`` carries that code (id and name). Other topics are **candidate themes**
  with ids ``TOPIC.00``, ``TOPIC.01``, ... (``candidate_code_ids_``).

``predict`` writes one ASSIGNMENT row per segment x topic: ``code_id`` is the mapped code or the
candidate id, ``label`` True, ``score`` the clipped centred cosine of the segment to the topic's centre
and ``evidence`` ``topic:<id> <label>`` (``; secondary share=<x>`` for further topics). BERTopic's own
zero-shot mode (``zeroshot_topic_list``) is not used: it swaps the clusterer for a cosine rule on the
fitted documents and merges models, which breaks "transform gives the fitted topics back".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from pipeline.codebook import Codebook
from pipeline.coders.base import BaseCoder, assignment_frame, check_is_fitted
from pipeline.embed import embed_segments, embed_texts
from pipeline.errors import ConfigError, MissingDependencyError

__all__ = ["CANDIDATE_PREFIX", "TOPICS_CODER", "TopicCoder", "codebook_seed_words", "is_candidate", "stop_words"]

TOPICS_CODER = "coder.topics.v1"
CANDIDATE_PREFIX = "TOPIC."
_CANDIDATE = re.compile(r"^TOPIC\.\d+$")
#: Fillers of spoken English and transcript marks, on top of scikit-learn's English stop words.
_FILLERS = ("yeah yes um uh er erm mm hmm like just really know think mean got get going gonna thing things kind "
            "sort bit okay ok oh well lot actually maybe something way said say says saying don didn doesn isn "
            "wasn ve ll re im id ive ill dont didnt doesnt isnt wasnt thats shes hes youre theyre weve wed cant "
            "couldnt wouldnt wont laughs laughing pause crosstalk inaudible sighs right did does want wanted "
            "told tell asked guess literally pretty quite sure stuff felt feel feels feeling")
#: Role words of code names that occur in every topic; never seed words.
_NOT_SEEDS = frozenset({"client", "therapist", "experience", "own", "early", "first", "session"})
#: c-TF-IDF boost of seed words (BERTopic's default 2.0 puts codebook words into nearly every topic here).
SEED_MULTIPLIER = 1.2
_TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"  # letters only: drops numbers and pseudonyms such as [CLIENT_1]


@lru_cache(maxsize=1)
def stop_words() -> tuple[str, ...]:
    """scikit-learn's English stop words plus spoken fillers (imported lazily: combine and exports import us)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return tuple(sorted(set(ENGLISH_STOP_WORDS) | set(_FILLERS.split())))


def is_candidate(code_id: str) -> bool:
    """True for a candidate-theme id (``TOPIC.07``), i.e. a topic that matches no codebook code."""
    return bool(_CANDIDATE.match(str(code_id)))


def codebook_seed_words(codebook: Codebook) -> list[str]:
    """Seed words from the codebook: the words of each code's name (no stop words), in codebook order.

    Only the names: the rule patterns hold everyday words ("gave", "end", "place") that would crowd the
    topic terms.
    """
    stop = set(stop_words())
    words: list[str] = []
    for code in codebook.codes:
        words += [w for w in re.findall(r"[a-z]{3,}", code.name.lower()) if w not in stop and w not in _NOT_SEEDS]
    return list(dict.fromkeys(words))


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors, dtype=np.float64), where=norms > 0)


class TopicCoder(BaseCoder):
    """Emergent topics (BERTopic) mapped onto the codebook where they match a code.

    Args:
        backend: Embedding backend registry name (``embed.static.v1`` or ``embed.minilm.v1``).
        speakers: Speaker roles fitted and coded (default client turns, which include feedback);
            ``None``: every segment.
        reducer: ``pca`` (deterministic) or ``umap`` (seeded with ``random_state``).
        n_components: Dimensions after reduction.
        clusterer: ``kmeans`` (seeded) or ``hdbscan``.
        n_topics: Topics for ``kmeans`` (at most one per ``min_topic_size`` segments).
        min_topic_size: Smallest topic (``hdbscan``'s min_cluster_size; caps ``n_topics``).
        outliers: Strategy of ``reduce_outliers`` for topic -1 (``embeddings``, ``c-tf-idf``,
            ``distributions``) or ``none``.
        outlier_threshold: Minimal similarity for an outlier to be reassigned.
        multi_topic_threshold: Share in the approximate topic distribution a further topic needs;
            ``None``: one topic per segment.
        map_threshold: Centred cosine a topic needs to its nearest code to carry that code.
        seed_words: Boost the codebook's words in the topic terms.
        top_n_words: Terms kept per topic.
        cache_dir: Embedding cache root.
        batch_size: Texts per encoder batch.
        random_state: Seed of the reducer and the clusterer.
    """

    name = TOPICS_CODER

    def __init__(self, *, backend: str = "embed.static.v1", speakers: Sequence[str] | None = ("client",),
                 reducer: str = "pca", n_components: int = 10, clusterer: str = "kmeans", n_topics: int = 20,
                 min_topic_size: int = 10, outliers: str = "embeddings", outlier_threshold: float = 0.0,
                 multi_topic_threshold: float | None = 0.3, map_threshold: float = 0.35, seed_words: bool = True,
                 top_n_words: int = 10, cache_dir: str | Path | None = None, batch_size: int = 64,
                 random_state: int = 0) -> None:
        self.backend = backend
        self.speakers = speakers
        self.reducer = reducer
        self.n_components = n_components
        self.clusterer = clusterer
        self.n_topics = n_topics
        self.min_topic_size = min_topic_size
        self.outliers = outliers
        self.outlier_threshold = outlier_threshold
        self.multi_topic_threshold = multi_topic_threshold
        self.map_threshold = map_threshold
        self.seed_words = seed_words
        self.top_n_words = top_n_words
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.random_state = random_state

    # ------------------------------------------------------------------------------------ helpers
    def _check_params(self) -> None:
        choices = {"reducer": ("pca", "umap"), "clusterer": ("kmeans", "hdbscan"),
                   "outliers": ("embeddings", "c-tf-idf", "distributions", "none")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"The '{key}' parameter of {self.name} must be one of {list(allowed)}. "
                                  f"Got {getattr(self, key)!r} instead.", key=key)
        for key, low in (("n_components", 1), ("n_topics", 1), ("min_topic_size", 2), ("top_n_words", 1)):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < low:
                raise ConfigError(f"The '{key}' parameter of {self.name} must be an int >= {low}. "
                                  f"Got {getattr(self, key)!r} instead.", key=key)
        mt = self.multi_topic_threshold
        if mt is not None and not 0.0 < float(mt) <= 1.0:
            raise ConfigError(f"The 'multi_topic_threshold' parameter of {self.name} must be a float in (0, 1] "
                              f"or None. Got {mt!r} instead.", key="multi_topic_threshold")

    def _selected(self, segments: pd.DataFrame) -> np.ndarray:
        """Positions of the segments this coder reads (speaker filter)."""
        if self.speakers is None:
            return np.arange(len(segments))
        return np.flatnonzero(segments["speaker"].astype(str).isin(list(self.speakers)).to_numpy())

    def _embeddings(self, segments: pd.DataFrame, embeddings: np.ndarray | None) -> np.ndarray:
        if embeddings is not None:
            if len(embeddings) != len(segments):
                raise ConfigError(f"embeddings have {len(embeddings)} rows for {len(segments)} segments.",
                                  key="embeddings")
            return np.asarray(embeddings, dtype=np.float32)
        return embed_segments(segments, backend=self.backend, cache_dir=self.cache_dir, batch_size=self.batch_size)

    def _build(self, n_docs: int, codebook: Codebook) -> Any:
        try:
            from bertopic import BERTopic
            from bertopic.vectorizers import ClassTfidfTransformer
        except ImportError as e:  # pragma: no cover - bertopic is a core dependency
            raise MissingDependencyError(f"{self.name} needs the package {e.name!r}, which is not installed.",
                                         hint="Run `make install` in the project folder.") from e
        from sklearn.feature_extraction.text import CountVectorizer

        dims = max(1, min(self.n_components, n_docs - 1))
        if self.reducer == "umap":
            from umap import UMAP

            reducer: Any = UMAP(n_neighbors=max(2, min(15, n_docs - 1)), n_components=dims, min_dist=0.0,
                                metric="cosine", random_state=self.random_state, n_jobs=1)
        else:
            from sklearn.decomposition import PCA

            reducer = PCA(n_components=dims, svd_solver="full", random_state=self.random_state)
        if self.clusterer == "hdbscan":
            from hdbscan import HDBSCAN

            cluster: Any = HDBSCAN(min_cluster_size=min(self.min_topic_size, max(2, n_docs)),
                                   prediction_data=True)
        else:
            from sklearn.cluster import KMeans

            k = max(1, min(self.n_topics, n_docs // self.min_topic_size, n_docs))
            cluster = KMeans(n_clusters=k, n_init=4, random_state=self.random_state)
        vectorizer = CountVectorizer(stop_words=list(stop_words()), token_pattern=_TOKEN_PATTERN,
                                     min_df=1)  # c-TF-IDF counts per topic: min_df 2 would drop topic-unique words
        seeds = codebook_seed_words(codebook) if self.seed_words else None
        ctfidf = ClassTfidfTransformer(seed_words=seeds, seed_multiplier=SEED_MULTIPLIER, reduce_frequent_words=True)
        return BERTopic(embedding_model=None, umap_model=reducer, hdbscan_model=cluster, vectorizer_model=vectorizer,
                        ctfidf_model=ctfidf, top_n_words=self.top_n_words, calculate_probabilities=False,
                        verbose=False)

    def _reassign(self, docs: list[str], topics: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        if self.outliers == "none" or not (topics == -1).any() or len(self.topic_ids_) == 0:
            return topics
        if not self.model_._outliers:  # fitted without topic -1: BERTopic refuses; nearest topic embedding
            mask = topics == -1
            sims = _unit(embeddings[mask].astype(np.float64)) @ _unit(np.asarray(self.model_.topic_embeddings_)).T
            best = np.asarray(self.topic_ids_, dtype=np.int64)[np.argmax(sims, axis=1)]
            out = topics.copy()
            out[mask] = np.where(sims.max(axis=1) >= self.outlier_threshold, best, -1)
            return out
        new = self.model_.reduce_outliers(docs, topics.tolist(), strategy=self.outliers,
                                          embeddings=embeddings if self.outliers == "embeddings" else None,
                                          threshold=self.outlier_threshold)
        return np.asarray(new, dtype=np.int64)

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, segments: pd.DataFrame, assignments: pd.DataFrame | None = None, *, codebook: Codebook,
            embeddings: np.ndarray | None = None) -> Self:
        """Fit the topics on the selected segments and map them onto the codebook.

        Args:
            segments: SEGMENT table (only ``speakers`` rows are used).
            assignments: Ignored (unsupervised); accepted for the coder interface.
            codebook: The codebook whose codes name matching topics.
            embeddings: Optional embeddings aligned with ``segments`` (else from the shared cache).

        Raises:
            ConfigError: (QA-E002) an invalid parameter.
        """
        self._check_params()
        pos = self._selected(segments)
        emb = self._embeddings(segments, embeddings)[pos]
        docs = segments["text"].astype(str).to_numpy()[pos].tolist()
        self.code_ids_ = list(codebook.code_ids)
        self.code_names_ = {c.id: c.name for c in codebook.codes}
        self.center_ = emb.astype(np.float64).mean(axis=0) if len(emb) else np.zeros(emb.shape[1])
        self.code_vectors_ = self._code_vectors(codebook)
        self.fit_segment_ids_ = segments["segment_id"].astype(str).to_numpy()[pos].tolist()
        if len(docs) < 2:
            self.model_ = None
            self.topic_ids_, self.labels_ = [], np.full(len(docs), -1, dtype=np.int64)
            self.outlier_share_before_ = self.outlier_share_after_ = float(len(docs) > 0)
            self._describe(docs, emb)
            return self
        self.model_ = self._build(len(docs), codebook)
        topics, _ = self.model_.fit_transform(docs, embeddings=emb.copy())
        topics = np.asarray(topics, dtype=np.int64)
        self.topic_ids_ = sorted(int(t) for t in set(self.model_.topic_representations_) if t != -1)
        self.outlier_share_before_ = float((topics == -1).mean())
        self.labels_ = self._reassign(docs, topics, emb)
        self.outlier_share_after_ = float((self.labels_ == -1).mean())
        self._describe(docs, emb)
        return self

    def _code_vectors(self, codebook: Codebook) -> np.ndarray:
        from pipeline.coders.similarity import codebook_prototypes

        protos = [p for p in codebook_prototypes(codebook) if p.positive]
        raw = embed_texts([p.text for p in protos], backend=self.backend, cache_dir=self.cache_dir,
                          batch_size=self.batch_size).astype(np.float64)
        out = np.zeros((len(self.code_ids_), raw.shape[1]))
        for i, code_id in enumerate(self.code_ids_):
            rows = [j for j, p in enumerate(protos) if p.code_id == code_id]
            if rows:
                out[i] = raw[rows].mean(axis=0)
        return _unit(out - self.center_)

    def _describe(self, docs: list[str], emb: np.ndarray) -> None:
        """Topic centres, terms, labels, code mapping and the most representative segments."""
        centred = _unit(emb.astype(np.float64) - self.center_)
        rows, centres = [], []
        for n, tid in enumerate(self.topic_ids_):
            members = np.flatnonzero(self.labels_ == tid)
            centre = _unit(centred[members].mean(axis=0)) if len(members) else np.zeros(centred.shape[1])
            centres.append(centre)
            sims = self.code_vectors_ @ centre if len(self.code_vectors_) else np.zeros(0)
            best = int(np.argmax(sims)) if len(sims) else -1
            similarity = float(sims[best]) if best >= 0 else 0.0
            mapped = self.code_ids_[best] if best >= 0 and similarity >= self.map_threshold else None
            terms = [(w, round(float(s), 6)) for w, s in (self.model_.get_topic(tid) or []) if w and s > 0]
            words = [w for w, _ in terms][: self.top_n_words]
            order = members[np.argsort(-(centred[members] @ centre), kind="stable")] if len(members) else members
            label = self.code_names_[mapped] if mapped else (", ".join(words[:3]) or f"topic {tid}")
            rows.append({"topic_id": tid, "code_id": mapped or f"{CANDIDATE_PREFIX}{n:02d}",
                         "label": label, "suggested_label": ", ".join(words[:3]) or f"topic {tid}",
                         "mapped": mapped is not None, "similarity": round(similarity, 6),
                         "nearest_code": self.code_ids_[best] if best >= 0 else None,
                         "size": len(members), "top_terms": words, "weights": [w for _, w in terms][: len(words)],
                         "representative": [self.fit_segment_ids_[i] for i in order[:5]]})
        self.topic_centres_ = np.vstack(centres) if centres else np.zeros((0, len(self.center_)))
        self.topics_ = rows
        self.candidate_code_ids_ = [r["code_id"] for r in rows if not r["mapped"]]

    # -------------------------------------------------------------------------------------- predict
    def transform(self, segments: pd.DataFrame, *, embeddings: np.ndarray | None = None) -> pd.DataFrame:
        """Topics of new segments without refitting.

        Returns:
            One row per selected segment: ``segment_id``, ``topic`` (primary topic id, -1 = outlier),
            ``score`` (centred cosine to the topic's centre, clipped to [0, 1]) and ``secondary``
            (list of ``(topic_id, share, score)`` further topics).
        """
        check_is_fitted(self)
        pos = self._selected(segments)
        ids = segments["segment_id"].astype(str).to_numpy()[pos].tolist()
        columns = ["segment_id", "topic", "score", "secondary"]
        if self.model_ is None or not len(pos):
            return pd.DataFrame({"segment_id": ids, "topic": -1, "score": 0.0, "secondary": [[] for _ in ids]},
                                columns=columns)
        emb = self._embeddings(segments, embeddings)[pos]
        docs = segments["text"].astype(str).to_numpy()[pos].tolist()
        topics, _ = self.model_.transform(docs, embeddings=emb.copy())
        topics = self._reassign(docs, np.asarray(topics, dtype=np.int64), emb)
        centred = _unit(emb.astype(np.float64) - self.center_)
        index = {t: i for i, t in enumerate(self.topic_ids_)}
        sims = centred @ self.topic_centres_.T if len(self.topic_ids_) else np.zeros((len(docs), 0))
        score = np.array([sims[i, index[t]] if t in index else 0.0 for i, t in enumerate(topics)])
        secondary: list[list[tuple[int, float, float]]] = [[] for _ in docs]
        if self.multi_topic_threshold is not None and len(self.topic_ids_) > 1:
            dist, _ = self.model_.approximate_distribution(docs, min_similarity=0.1)
            dist = np.asarray(dist, dtype=np.float64)
            for i, j in zip(*np.nonzero(dist >= float(self.multi_topic_threshold)), strict=True):
                tid = self.topic_ids_[j]
                if tid != topics[i]:
                    cos = round(float(np.clip(sims[i, j], 0.0, 1.0)), 6)
                    secondary[i].append((tid, round(float(dist[i, j]), 4), cos))
        return pd.DataFrame({"segment_id": ids, "topic": topics.astype(np.int64),
                             "score": np.round(np.clip(score, 0.0, 1.0), 6), "secondary": secondary},
                            columns=columns)

    def predict(self, segments: pd.DataFrame, *, run_id: str = "",
                embeddings: np.ndarray | None = None) -> pd.DataFrame:
        """ASSIGNMENT rows: each selected segment's topic (and further topics) as its code or candidate theme."""
        check_is_fitted(self)
        return self.assignments(self.transform(segments, embeddings=embeddings), run_id=run_id)

    def assignments(self, assigned: pd.DataFrame, *, run_id: str = "") -> pd.DataFrame:
        """Turn :meth:`transform` output into ASSIGNMENT rows (one per segment x code; best score kept)."""
        check_is_fitted(self)
        info = {r["topic_id"]: r for r in self.topics_}
        centres = {t: i for i, t in enumerate(self.topic_ids_)}
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for r in assigned.itertuples(index=False):
            entries = [(int(r.topic), float(r.score), "")] if int(r.topic) in info else []
            entries += [(t, cos, f"; secondary share={share:.2f}") for t, share, cos in r.secondary if t in centres]
            for tid, score, note in entries:
                topic = info[tid]
                row = {"segment_id": r.segment_id, "code_id": topic["code_id"], "coder": self.name,
                       "score": score, "label": True, "evidence": f"topic:{tid} {topic['label']}{note}",
                       "run_id": run_id}
                best.setdefault((r.segment_id, topic["code_id"]), row)  # primary first, then secondaries
        return assignment_frame(list(best.values()))

    def topic_table(self) -> pd.DataFrame:
        """One row per topic: id, label, mapped code, candidate flag, size, share, terms, similarity."""
        check_is_fitted(self)
        total = max(1, len(self.fit_segment_ids_))
        rows = [{"topic_id": r["topic_id"], "label": r["label"], "code_id": r["code_id"],
                 "code_name": self.code_names_.get(r["code_id"]) if r["mapped"] else None,
                 "candidate": not r["mapped"], "size": r["size"], "share": round(r["size"] / total, 6),
                 "top_terms": "; ".join(r["top_terms"]), "suggested_label": r["suggested_label"],
                 "similarity": r["similarity"]} for r in self.topics_]
        return pd.DataFrame(rows, columns=["topic_id", "label", "code_id", "code_name", "candidate", "size", "share",
                                           "top_terms", "suggested_label", "similarity"])
