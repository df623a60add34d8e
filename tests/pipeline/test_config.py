from pathlib import Path

import pytest

from pipeline.codebook import load_codebook
from pipeline.config import load_run_config
from pipeline.errors import CodebookError, ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_config_default_loads_and_resolves_codebook():
    cfg = load_run_config(ROOT / "configs" / "runs" / "default.yaml")
    assert cfg.codebook.is_absolute() and cfg.codebook.exists()
    assert cfg.coders[0].use == "coder.rules.v1"


def test_config_error_gives_file_line_and_key(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("version: 1\nsegment:\n  unit: sentence\n  min_chars: -3\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(p)
    e = err.value
    assert e.line == 4 and e.key == "segment.min_chars" and e.code == "QA-E002"
    assert str(e).startswith(f"[QA-E002] {p}:4:")


def test_config_typo_in_nested_key_is_an_error(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("version: 1\ndeidentify:\n  date_precison: year\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(p)
    assert err.value.key == "deidentify.date_precison" and err.value.line == 3
    assert "unknown key" in str(err.value)


def test_config_unknown_coder_rejected(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("version: 1\ncoders:\n  - use: coder.magic.v1\n")
    with pytest.raises(ConfigError, match="unknown coder"):
        load_run_config(p)


def test_config_invalid_yaml_names_line(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("version: 1\nsegment: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(p)
    assert err.value.code == "QA-E001" and err.value.line is not None


def test_codebook_project_codebook_is_complete(codebook):
    parents = {p.id for p in codebook.parents}
    assert len(parents) >= 11 and len(codebook.codes) >= 12
    for code in codebook.codes:
        assert code.parent in parents
        assert code.definition and len(code.when_to_use) >= 2 and len(code.when_not_to_use) >= 2
        assert len(code.examples) >= 4 and code.speakers and len(code.patterns) >= 8


def test_codebook_unknown_parent_and_bad_pattern(tmp_path):
    p = tmp_path / "cb.yaml"
    p.write_text(
        "id: t\nversion: 1.0.0\nparents:\n  - {id: WA.A, name: A}\ncodes:\n"
        "  - id: WA.A.X\n    name: X\n    parent: WA.B\n    definition: d\n"
    )
    with pytest.raises(CodebookError, match="not in 'parents'"):
        load_codebook(p)
    p.write_text(
        "id: t\nversion: 1.0.0\nparents:\n  - {id: WA.A, name: A}\ncodes:\n"
        "  - id: WA.A.X\n    name: X\n    parent: WA.A\n    definition: d\n    patterns:\n"
        "      - tokens: [{LOWER: felt}, {NOPE: x}]\n"
    )
    with pytest.raises(CodebookError) as err:
        load_codebook(p)
    assert err.value.code == "QA-E004" and err.value.line == 11 and "patterns[0]" in err.value.key
