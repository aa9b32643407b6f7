"""Where configuration lives. Every environment variable is named HSDT_… and documented here.

- ``HSDT_CONFIG_DIR``: the folder holding ``default.toml`` and ``plans/`` (default: the
  ``config/`` folder of this checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

from hsdt.domain.plans import PlanSpec, load_plan

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
FONTS_DIR = TEMPLATES_DIR / "fonts"


def config_dir() -> Path:
    env = os.environ.get("HSDT_CONFIG_DIR")
    return Path(env) if env else PACKAGE_DIR.parent / "config"


def plan_for(kind: str) -> PlanSpec:
    return load_plan(config_dir() / "plans" / f"{kind}.toml")
