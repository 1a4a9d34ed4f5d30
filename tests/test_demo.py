from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND


@pytest.mark.skipif(
    BACKEND == "postgresql", reason="the demo brings its own SQLite database; one run is enough"
)
def test_demo_runs_the_whole_flow_to_completion(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tradecast", "demo", "--pace", "1"],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout
    assert "demo complete" in output
    for shown in ("London VPS", "Home laptop", "Prop account", "execution_error", "USD"):
        assert shown in output
    assert "Traceback" not in result.stderr
