"""The published OpenAPI (``docs/openapi.json``) is the one the code serves, and reads in Vietnamese.

When a route changes, regenerate the document: ``hsdt openapi --out docs/openapi.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hsdt.service.config import openapi_json

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
VIETNAMESE = set("ăâđêôơưáàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ")


def _operations(spec: dict) -> list[tuple[str, str, dict]]:  # type: ignore[type-arg]
    return [(method.upper(), path, op) for path, item in spec["paths"].items()
            for method, op in item.items() if method in METHODS]


def test_the_published_document_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == openapi_json(), (
        "docs/openapi.json is stale: run `hsdt openapi --out docs/openapi.json` and commit it")


def test_the_cli_prints_the_same_document(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    run = subprocess.run([sys.executable, "-m", "hsdt.cli", "openapi", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert out.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")


def test_every_operation_has_a_vietnamese_summary() -> None:
    spec = json.loads(DOC.read_text(encoding="utf-8"))
    operations = _operations(spec)
    assert len(operations) >= 26
    missing = [f"{m} {p}" for m, p, op in operations
               if not VIETNAMESE & set(op.get("summary", "").lower())]
    assert not missing, f"no Vietnamese summary (add one to SUMMARIES in hsdt/api/app.py): {missing}"
    assert VIETNAMESE & set(spec["info"]["description"].lower())

