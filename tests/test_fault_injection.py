"""An interrupted run resumes cleanly: one point of scripts/fault_injection.py (the script
tries them all, by hand: docs/running.md). RegSegNet's training is SIGKILLed, with
Snakemake, 80 % into its reference duration (past its first epoch's checkpoint), as a crash
would; after `--unlock` and `--rerun-incomplete` the data stage and RegSegNet's and
identity's masks and metrics equal an uninterrupted run's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_training_killed_then_resumed_ends_as_if_never_killed(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fault_injection.py"), "--points",
         "regsegnet_train", "--methods", "identity", "regsegnet", "--kill-at", "0.8",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=1500,
    )
    log = tmp_path / "fault_injection.log"
    detail = result.stdout + result.stderr[-3000:] + (log.read_text()[-4000:] if log.exists()
                                                      else "")
    assert result.returncode == 0, detail
    assert "SIGKILL to the process group" in log.read_text()
    assert "regsegnet_train: killed" in result.stdout and "files: identical" in result.stdout
    assert "1 of 1 kill points recovered with identical results" in result.stdout
