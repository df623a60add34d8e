"""Dependency audit of the installed environment, as a report (exit 1 only when the pins do not hold).

What it does, all against the environment of the interpreter that runs it (``.venv/bin/python .ci/audit.py``):

1. Pins: every direct dependency in pyproject.toml (core and the ``dev`` extra) must be pinned with ``==`` and
   installed at exactly that version. Installed distributions that no pin covers (transitive dependencies)
   are listed: they are resolved by pip at install time, not locked.
2. ``pip check``: broken or conflicting requirements among the installed distributions.
3. Inventory: name, version, licence and purl of every installed distribution, as CycloneDX-style JSON
   (``outputs/audit/inventory.cdx.json``).
4. Known vulnerabilities: ``pip-audit --format json`` with a short timeout. Without network it cannot reach
   PyPI or OSV; the report then says so and why. ``--osv-url`` points pip-audit at another OSV API (a local
   mirror); ``--osv-dir`` checks the installed set offline against OSV advisory files (``*.json`` or the
   ``PyPI/all.zip`` export from osv.dev), matching the exact versions each advisory lists.

Writes ``outputs/audit/report.json`` and prints a readable summary. Usage::

    .venv/bin/python .ci/audit.py [--out outputs/audit] [--osv-url URL] [--osv-dir DIR] [--skip-pip-audit]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent
PIP_AUDIT_TIMEOUT_S = 90


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PinReport:
    """Direct requirements against the installed set."""

    matching: list[str] = field(default_factory=list)
    mismatched: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unpinned_direct: list[str] = field(default_factory=list)
    unpinned_transitive: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every direct requirement is pinned with == and installed at that version."""
        return not (self.mismatched or self.missing or self.unpinned_direct)


def compare_pins(requirements: list[str], installed: dict[str, str], *, ignore: tuple[str, ...] = ()) -> PinReport:
    """Compare requirement strings (``name[extra]==1.2 ; marker``) with ``{name: version}`` of installed dists.

    A requirement whose marker does not apply here is skipped. ``ignore`` names (e.g. pip itself, this project)
    are left out of the transitive list.
    """
    report = PinReport()
    have = {normalize(k): v for k, v in installed.items()}
    direct: set[str] = set()
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            report.unpinned_direct.append(text)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = normalize(req.name)
        direct.add(name)
        pins = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if len(pins) != 1 or len(req.specifier) != 1:
            report.unpinned_direct.append(text)
        elif name not in have:
            report.missing.append(text)
        elif not req.specifier.contains(have[name], prereleases=True):  # ==2.13.0 holds 2.13.0+cpu (PEP 440)
            report.mismatched.append({"name": name, "pinned": pins[0], "installed": have[name]})
        else:
            report.matching.append(f"{name}=={pins[0]}")
    skip = direct | {normalize(n) for n in ignore}
    report.unpinned_transitive = sorted(f"{n}=={v}" for n, v in have.items() if n not in skip)
    return report


def project_requirements(pyproject: Path, extras: tuple[str, ...] = ("dev",)) -> tuple[str, list[str]]:
    """The project's name and its core plus chosen optional dependencies."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(data.get("dependencies", []))
    for extra in extras:
        reqs += data.get("optional-dependencies", {}).get(extra, [])
    return data["name"], reqs


def installed_distributions() -> dict[str, metadata.Distribution]:
    """Installed distributions of this interpreter by normalised name (the first one on sys.path wins)."""
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            dists.setdefault(normalize(name), dist)
    return dists


def licence(dist: metadata.Distribution) -> str:
    """The licence as declared: License-Expression, a short License field, or the licence classifiers."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression
    text = (meta.get("License") or "").strip()
    if text and len(text) < 100 and "\n" not in text:
        return text
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return "; ".join(classifiers) or "UNKNOWN"


def inventory(dists: dict[str, metadata.Distribution]) -> dict:
    """A CycloneDX 1.5-style bill of materials of the installed distributions."""
    components = [{"type": "library", "name": name, "version": dist.version,
                   "purl": f"pkg:pypi/{name}@{dist.version}", "licenses": [{"license": {"name": licence(dist)}}]}
                  for name, dist in sorted(dists.items())]
    return {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
            "metadata": {"component": {"type": "application", "name": "alliance-coder"},
                         "tools": [{"name": ".ci/audit.py"}]},
            "components": components}


def pip_check() -> dict:
    """Run ``pip check`` in this environment."""
    res = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    return {"ok": res.returncode == 0, "output": (res.stdout + res.stderr).strip().splitlines()}


def pip_audit(osv_url: str | None) -> dict:
    """Run pip-audit on this environment's site-packages; say how many distributions it could really audit."""
    exe = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if exe is None:
        return {"ran": False, "reason": "pip-audit is not installed (it is in the dev extra)"}
    cmd = [exe, "--format", "json", "--progress-spinner", "off", "--timeout", "10", "--path",
           *[p for p in sys.path if p.endswith("site-packages")][:1]]
    if osv_url:
        cmd += ["--vulnerability-service", "osv", "--osv-url", osv_url]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_AUDIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"ran": False, "reason": f"pip-audit did not finish in {PIP_AUDIT_TIMEOUT_S} s (no network?)"}
    try:
        found = json.loads(res.stdout)
    except json.JSONDecodeError:
        tail = [line for line in res.stderr.strip().splitlines() if line.strip()][-3:]
        return {"ran": False, "reason": "pip-audit could not query a vulnerability service (offline?)",
                "exit_code": res.returncode, "stderr_tail": tail}
    deps = found.get("dependencies", [])
    skipped = [d for d in deps if "skip_reason" in d]
    vulns = [{"name": d["name"], "version": d.get("version"), "ids": [v["id"] for v in d.get("vulns", [])]}
             for d in deps if d.get("vulns")]
    result = {"ran": True, "exit_code": res.returncode, "audited": len(deps) - len(skipped),
              "skipped": len(skipped), "vulnerable": vulns}
    if skipped:  # offline, every dependency is "not found on PyPI": nothing was checked
        result["skip_reason_example"] = skipped[0]["skip_reason"]
    return result


def osv_records(folder: Path) -> list[dict]:
    """OSV advisories from ``*.json`` files and ``*.zip`` exports under ``folder``."""
    records = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".json":
            records.append(json.loads(path.read_text(encoding="utf-8")))
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                records += [json.loads(archive.read(n)) for n in archive.namelist() if n.endswith(".json")]
    return records


def match_advisories(records: list[dict], installed: dict[str, str]) -> list[dict]:
    """Advisories whose PyPI ``affected[].versions`` list holds an installed version."""
    have = {normalize(k): v for k, v in installed.items()}
    hits = []
    for record in records:
        for affected in record.get("affected", []):
            package = affected.get("package", {})
            name = normalize(package.get("name", ""))
            if package.get("ecosystem") == "PyPI" and have.get(name) in affected.get("versions", []):
                hits.append({"id": record.get("id"), "name": name, "version": have[name],
                             "aliases": record.get("aliases", [])})
    return sorted(hits, key=lambda h: (h["name"], h["id"] or ""))


def main(argv: list[str] | None = None) -> int:
    """Run the audit; 1 when the pins do not hold, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "audit")
    parser.add_argument("--osv-url", help="OSV API of a local mirror, passed to pip-audit")
    parser.add_argument("--osv-dir", type=Path, help="folder of OSV advisory JSON files or PyPI/all.zip")
    parser.add_argument("--skip-pip-audit", action="store_true")
    args = parser.parse_args(argv)

    name, reqs = project_requirements(ROOT / "pyproject.toml")
    dists = installed_distributions()
    versions = {n: d.version for n, d in dists.items()}
    pins = compare_pins(reqs, versions, ignore=(name, "pip", "setuptools", "wheel"))
    report = {"python": sys.version.split()[0], "environment": sys.prefix, "installed": len(dists),
              "pins": {**asdict(pins), "ok": pins.ok}, "pip_check": pip_check(),
              "pip_audit": {"ran": False, "reason": "skipped (--skip-pip-audit)"} if args.skip_pip_audit
              else pip_audit(args.osv_url)}
    if args.osv_dir:
        report["osv_offline"] = {"advisories": len(recs := osv_records(args.osv_dir)),
                                 "vulnerable": match_advisories(recs, versions)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "inventory.cdx.json").write_text(json.dumps(inventory(dists), indent=2) + "\n", encoding="utf-8")
    print_report(report, args.out)
    return 0 if pins.ok else 1


def print_report(report: dict, out: Path) -> None:
    """Print the readable summary."""
    pins = report["pins"]
    print(f"dependency audit: {report['installed']} distributions installed (Python {report['python']})")
    print(f"  pins: {len(pins['matching'])} direct dependencies match pyproject.toml"
          + ("" if pins["ok"] else " -- PIN PROBLEMS:"))
    for item in pins["mismatched"]:
        print(f"    {item['name']}: pinned {item['pinned']}, installed {item['installed']}")
    for text in pins["missing"]:
        print(f"    not installed: {text}")
    for text in pins["unpinned_direct"]:
        print(f"    not pinned with ==: {text}")
    print(f"  transitive (resolved by pip, not locked): {len(pins['unpinned_transitive'])}")
    check = report["pip_check"]
    print(f"  pip check: {'ok' if check['ok'] else 'PROBLEMS'}")
    for line in check["output"] if not check["ok"] else []:
        print(f"    {line}")
    audit = report["pip_audit"]
    if audit["ran"] and not audit["audited"]:
        print(f"  pip-audit: ran, but audited 0 of {audit['skipped']} distributions (no vulnerability data; "
              f"e.g. {audit.get('skip_reason_example', '')!r})")
    elif audit["ran"]:
        print(f"  pip-audit: audited {audit['audited']}, skipped {audit['skipped']}: "
              f"{len(audit['vulnerable'])} vulnerable distribution(s)")
        for vuln in audit["vulnerable"]:
            print(f"    {vuln['name']} {vuln['version']}: {', '.join(vuln['ids'])}")
    else:
        print(f"  pip-audit: not run -- {audit['reason']}")
    if "osv_offline" in report:
        offline = report["osv_offline"]
        print(f"  offline OSV check: {offline['advisories']} advisories, {len(offline['vulnerable'])} match")
        for hit in offline["vulnerable"]:
            print(f"    {hit['name']} {hit['version']}: {hit['id']}")
    print(f"  written: {out / 'report.json'}, {out / 'inventory.cdx.json'}")


if __name__ == "__main__":
    sys.exit(main())
