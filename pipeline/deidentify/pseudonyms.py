"""Consistent pseudonyms across a corpus, and the restricted file that keeps the mapping.

The map (original -> pseudonym) is a re-identification key. It is written with mode 0600 in a 0700
folder, outside the run outputs by default, and no export ever includes it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path

__all__ = ["PseudonymMap", "default_map_path", "normalise"]

#: Pseudonym prefix per category; names get a role-specific prefix.
PREFIX = {
    "client": "CLIENT", "therapist": "THERAPIST", "interviewer": "RESEARCHER", "NAME": "PERSON",
    "PLACE": "PLACE", "ORG": "ORG", "EMAIL": "EMAIL", "PHONE": "PHONE", "URL": "URL",
    "ADDRESS": "ADDRESS", "ID": "ID",
}
#: Categories replaced by a fixed placeholder (no number: they carry no identity across documents).
FIXED = {"DATE": "[DATE]", "AGE": "[AGE_90+]"}

_TITLES = re.compile(r"^(?:dr|mr|mrs|ms|mx|miss|prof|professor)\.?\s+", re.I)


def normalise(value: str) -> str:
    """Key used for look-ups: NFKC, case-folded, titles and possessives stripped, spaces collapsed."""
    v = unicodedata.normalize("NFKC", value).strip()
    v = re.sub(r"['’]s$", "", v)
    v = _TITLES.sub("", v)
    return " ".join(v.casefold().split())


def default_map_path(corpus_id: str) -> Path:
    """``$ALLIANCE_KEY_DIR/<corpus_id>.pseudonyms.json`` (default ``~/.alliance/keys``)."""
    base = Path(os.environ.get("ALLIANCE_KEY_DIR", Path.home() / ".alliance" / "keys"))
    return base / f"{corpus_id}.pseudonyms.json"


class PseudonymMap:
    """Original -> pseudonym, with per-prefix counters; the same original always gets the same pseudonym.

    Args:
        path: The restricted JSON file; loaded if it exists, written by :meth:`save`.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._map: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        if path is not None and path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            self._map = dict(data.get("map", {}))
            self._counters = {k: int(v) for k, v in data.get("counters", {}).items()}

    def __len__(self) -> int:
        return len(self._map)

    def get(self, original: str) -> str | None:
        """The pseudonym of ``original`` if it has one."""
        return self._map.get(normalise(original))

    def names(self) -> list[str]:
        """Every original name-like key (for deny-lists); never logged."""
        return [k for k, v in self._map.items() if not v.startswith(("[EMAIL", "[PHONE", "[URL", "[ID"))]

    def assign(self, original: str, category: str) -> str:
        """Return the pseudonym for ``original``, creating one for ``category`` if needed.

        For people, each part of a multi-word name that has no pseudonym yet is linked to the same one
        ("Maya Ellis" and a later bare "Maya" both become ``[THERAPIST_1]``).
        """
        if category in FIXED:
            return FIXED[category]
        key = normalise(original)
        if not key:
            return f"[{PREFIX.get(category, category)}]"
        if key in self._map:
            return self._map[key]
        prefix = PREFIX.get(category, category)
        self._counters[prefix] = self._counters.get(prefix, 0) + 1
        pseudonym = f"[{prefix}_{self._counters[prefix]}]"
        self._map[key] = pseudonym
        if category in ("client", "therapist", "interviewer", "NAME"):
            for part in key.replace("-", " ").split():
                if len(part) >= 3 and part not in self._map:
                    self._map[part] = pseudonym
        return pseudonym

    def save(self) -> None:
        """Write the map atomically with mode 0600 in a 0700 folder."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        payload = json.dumps({"map": self._map, "counters": self._counters}, ensure_ascii=False, indent=1,
                             sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".pseudonyms.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
