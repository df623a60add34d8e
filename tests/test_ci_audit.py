"""The offline dependency audit (.ci/audit.py): pin comparison and offline advisory matching on made-up sets."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
audit = importlib.util.module_from_spec(_spec)
sys.modules["ci_audit"] = audit  # dataclasses look their module up
_spec.loader.exec_module(audit)


def test_pins_match_mismatch_missing_unpinned_and_transitive() -> None:
    reqs = ["torch==2.13.0", "Ruamel.Yaml==0.19.1", "psycopg[binary]==3.3.6", "pandas>=2", "numpy==2.4.6",
            "krippendorff==0.9.0", "pywin32==306 ; sys_platform == 'win32'", "not a requirement !!"]
    installed = {"torch": "2.13.0+cpu", "ruamel-yaml": "0.19.1", "psycopg": "3.3.7", "pandas": "3.1.1",
                 "numpy": "2.4.6", "idna": "3.10", "alliance-coder": "0.1.0", "pip": "25.0"}
    report = audit.compare_pins(reqs, installed, ignore=("alliance-coder", "pip"))
    assert report.matching == ["torch==2.13.0", "ruamel-yaml==0.19.1", "numpy==2.4.6"]
    assert report.mismatched == [{"name": "psycopg", "pinned": "3.3.6", "installed": "3.3.7"}]
    assert report.missing == ["krippendorff==0.9.0"]
    assert report.unpinned_direct == ["pandas>=2", "not a requirement !!"]
    assert report.unpinned_transitive == ["idna==3.10"]  # pywin32's marker does not apply here
    assert not report.ok
    assert audit.compare_pins(["numpy==2.4.6"], {"numpy": "2.4.6"}).ok


def test_project_pins_are_all_exact() -> None:
    name, reqs = audit.project_requirements(ROOT / "pyproject.toml")
    assert name == "alliance-coder"
    report = audit.compare_pins(reqs, {})
    assert report.unpinned_direct == [] and len(report.missing) == len(reqs)


def test_offline_osv_advisories_match_exact_installed_versions(tmp_path: Path) -> None:
    records = [
        {"id": "GHSA-1", "aliases": ["CVE-1"], "affected": [{"package": {"ecosystem": "PyPI", "name": "PyYAML"},
                                                             "versions": ["5.3", "5.4"]}]},
        {"id": "GHSA-2", "affected": [{"package": {"ecosystem": "PyPI", "name": "lxml"}, "versions": ["4.0"]}]},
        {"id": "GHSA-3", "affected": [{"package": {"ecosystem": "npm", "name": "pyyaml"}, "versions": ["5.4"]}]},
    ]
    (tmp_path / "one.json").write_text(json.dumps(records[0]))
    with zipfile.ZipFile(tmp_path / "all.zip", "w") as archive:
        for record in records[1:]:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    loaded = audit.osv_records(tmp_path)
    assert len(loaded) == 3
    hits = audit.match_advisories(loaded, {"pyyaml": "5.4", "lxml": "6.1.3"})
    assert hits == [{"id": "GHSA-1", "name": "pyyaml", "version": "5.4", "aliases": ["CVE-1"]}]
