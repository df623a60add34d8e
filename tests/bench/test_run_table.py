"""The benchmark suite's table writer and ratio arithmetic (bench/run.py); no benchmark runs here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402


def _result(size: int, segments: int, scale: float, *, dask: bool = False) -> dict:
    stages = {"ingest": 10.0 * scale, "segment": 2.0 * scale, "code.coder.rules.v1": 4.0 * scale,
              "export": 1.0 * scale}
    local = {"segments": segments, "documents": segments // 20, "wall_seconds": 25.0 * scale, "peak_rss_mb": 900.0,
             "stages": stages}
    local["stage_segments_per_s"] = run.stage_rates(stages, segments)
    local["e2e_segments_per_s"] = round(segments / local["wall_seconds"], 1)
    result = {"size": size, "local": local, "ner": {"ner_seconds": 5.0 * scale},
              "incremental": {"available": True, "full": {"seconds": 40.0}, "incremental": {"seconds": 1.0}},
              "dask": {"available": False},
              "embeddings": {"speed_this_run": {"static_over_minilm": 60.0},
                             "annomi": {"annomi_therapist": {"f1_static_minus_minilm": -0.013},
                                        "annomi_client": {"f1_static_minus_minilm": -0.028}}},
              "machine": {"loadavg_before": [1.5, 1.0, 1.0], "loadavg_after": [2.25, 1.0, 1.0]},
              "date": "2026-11-26T18:10:00+00:00"}
    if dask:
        result["dask"] = {"available": True, "wall_seconds": 20.0 * scale,
                          "stages": {k: v / 2 for k, v in stages.items()}}
    result["ratios"] = run.ratios(result)
    return result


def test_ratios_from_one_result() -> None:
    r = _result(10_000, 10_000, 1.0, dask=True)["ratios"]
    assert r["e2e_over_ner"] == pytest.approx(5.0 / 25.0)
    assert r["e2e_stages_over_ner"] == pytest.approx(5.0 / 17.0, abs=1e-3)
    assert r["incremental_over_full"] == pytest.approx(0.025)
    assert r["dask2_speedup_cpu_stages"] == pytest.approx(2.0)  # ingest, segment and coders only, not export
    assert r["dask2_speedup_e2e"] == pytest.approx(25.0 / 20.0)
    assert r["static_over_minilm_speed"] == 60.0
    assert r["annomi_f1_static_minus_minilm"] == {"annomi_therapist": -0.013, "annomi_client": -0.028}
    given = _result(10_000, 10_000, 1.0)
    given["incremental"]["ratio_incremental_to_full"] = 0.031  # bench/incremental.py's own ratio wins
    assert run.ratios(given)["incremental_over_full"] == pytest.approx(0.031)
    given["incremental"]["ratio_without_export"] = 0.012
    assert "| 0.031 (0.012 without the NVivo export) |" in run.render_table([{**given, "ratios": run.ratios(given)}])
    missing = _result(10_000, 10_000, 1.0)
    missing["incremental"] = {"available": False, "reason": "x"}
    assert run.ratios(missing)["incremental_over_full"] is None
    assert run.ratios(missing)["dask2_speedup_cpu_stages"] is None


def test_growth_exponents_linear_and_quadratic() -> None:
    linear = [_result(10_000, 10_000, 1.0), _result(100_000, 100_000, 10.0), _result(300_000, 300_000, 30.0)]
    growth = run.growth_exponents(linear)
    assert growth["ingest"] == pytest.approx(1.0)
    assert growth["end to end"] == pytest.approx(1.0)
    assert growth["NER pass"] == pytest.approx(1.0)
    assert growth["peak memory"] == pytest.approx(0.0)
    quadratic = [_result(10_000, 10_000, 1.0), _result(100_000, 100_000, 100.0)]
    assert run.growth_exponents(quadratic)["segment"] == pytest.approx(2.0)
    assert run.growth_exponents(linear[:1]) == {}


def test_render_table_rows() -> None:
    table = run.render_table([_result(100_000, 98_000, 10.0), _result(10_000, 10_123, 1.0, dask=True)])
    lines = table.splitlines()
    rows = [line for line in lines if line.startswith("| 10,000 |") or line.startswith("| 100,000 |")]
    assert rows[0] == ("| 10,000 | 10,123 | 506 | 25 | 405 | 900 | 2025 | 0.20 | 0.025 | 2.00× (e2e 1.25×) | 60× | "
                       "-0.013 / -0.028 | 1.5→2.2 |")
    assert rows[1].startswith("| 100,000 | 98,000 | 4,900 | 250 | 392 | 900 | 1960 | 0.20 | 0.025 | not available |")
    assert "| size | ingest | segment | code.coder.rules.v1 | export |" in lines
    assert "| 10,000 | 1012 | 5062 | 2531 | 10123 |" in lines
    assert any(line.startswith("Growth exponents") for line in lines)


def test_update_readme_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{run.START}\nold table\n{run.END}\nafter\n", encoding="utf-8")
    run.update_readme(readme, "| new |")
    assert readme.read_text(encoding="utf-8") == f"# Title\n\nbefore\n{run.START}\n| new |\n{run.END}\nafter\n"
    run.update_readme(readme, "| newer |")
    assert readme.read_text(encoding="utf-8").count(run.START) == 1
    assert "| new |" not in readme.read_text(encoding="utf-8")
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        run.update_readme(bare, "x")


def test_failed_and_missing_parts_are_named() -> None:
    result = _result(10_000, 10_000, 1.0)
    result["dask"] = {"available": True, "error": "RuntimeError: alliance run failed (exit 1)"}
    result["incremental"] = {"available": False, "reason": "bench.incremental not importable"}
    result["ratios"] = run.ratios(result)
    assert result["ratios"]["dask2_speedup_cpu_stages"] is None
    row = next(line for line in run.render_table([result]).splitlines() if line.startswith("| 10,000 | 10,000 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[8:10] == ["not available", "failed (see JSON)"]
