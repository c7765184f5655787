"""What many test files share: the checkout's root, and a tool script loaded as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_tool(script: str | Path) -> ModuleType:
    """``tools/<script>.py`` (a name) or a script's path, as a fresh module registered under its name as an import
    would be (dataclasses look their module up in ``sys.modules``)."""
    path = Path(script) if str(script).endswith(".py") else REPO / "tools" / f"{script}.py"
    spec = importlib.util.spec_from_file_location(f"groupseg_tool_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
