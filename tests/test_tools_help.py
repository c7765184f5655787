"""Every script in tools/ and tools/research/ answers ``--help`` at once: usage on stdout, exit code 0, and none of
torch, mmengine or mmseg imported (seconds to load; the scripts import them after parsing their arguments)."""
import re
import subprocess
import sys

import pytest
from helpers_tools import REPO, load_tool

SCRIPTS = sorted([*REPO.glob("tools/*.py"), *REPO.glob("tools/research/*.py")])
HEAVY = ("torch", "mmengine", "mmseg")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_help_answers_without_loading_torch_mmengine_or_mmseg(script):
    # run as a user runs it; -X importtime lists every module imported on stderr, one "... | name" line each
    result = subprocess.run([sys.executable, "-X", "importtime", str(script), "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout
    imported = [name for name in HEAVY if re.search(rf"^import time:.*\|\s*{name}$", result.stderr, re.M)]
    assert not imported, f"{script.name} --help imports {', '.join(imported)}"


def test_choices_the_tools_name_are_the_librarys():
    """--protocol and --bg-score choices are named in the tools (the library's modules that hold them load mmseg or
    torch, too slow for --help): they must stay the library's."""
    from groupseg.zeroshot.head import BG_SCORES
    from groupseg.zeroshot.protocols import PROTOCOL_NAMES

    for name in ("test.py", "benchmark_table.py"):
        assert load_tool(REPO / "tools" / name).PROTOCOL_NAMES == PROTOCOL_NAMES
    for name in ("video.py", "research/diagnose_synthetic.py"):
        assert load_tool(REPO / "tools" / name).BG_SCORES == BG_SCORES
