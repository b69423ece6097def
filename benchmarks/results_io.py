"""Where a benchmark's JSON goes: benchmarks/results/<name>.json unless --json says otherwise."""

from __future__ import annotations

import json
from pathlib import Path


def default_path(name: str) -> str:
    return str(Path(__file__).parent / "results" / f"{name}.json")


def write_json(path: str, result: dict) -> None:
    """Writes `result` (making the folder) and says where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
