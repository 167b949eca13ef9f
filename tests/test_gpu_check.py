"""The GPU check's CPU dry run (tiny sizes), so that the script the GPU machine runs cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_on_cpu(tmp_path):
    out = tmp_path / "out"
    res = subprocess.run(
        # --budget-s 0: every section runs, however busy the machine is
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--out", str(out), "--device", "cpu", "--quick"]
        + ["--budget-s", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    records = json.loads((out / "gpu_check.json").read_text())
    speed = [r for r in records if r["section"] == "speed"]
    assert {r["impl"] for r in speed} == {"ours", "upstream"} and all(r["fps"] > 0 for r in speed)
    for r in records:  # the fields the acceptance asks for, as scripts/bench_propagation.py writes them
        assert {"impl", "model", "objects", "frames", "image_size", "device", "fps", "peak_gpu_mib"} <= set(r)
    checks = json.loads((out / "gpu_check_summary.json").read_text())["checks"]
    assert checks["parity fp32 (all within 1e-4)"] is True
    assert checks["toy J&F fp32 / bf16 / |diff| <= 0.01"].endswith("True")
    assert checks["ours vs upstream under bf16: min mask agreement (>= 0.99)"] >= 0.99
    assert checks["end to end / propagation only fps (>= 0.9)"] > 0
    # the table comes last, on stdout
    assert res.stdout.strip().splitlines()[-1].startswith("check end to end split")
    assert "device: cpu" in res.stdout
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_check.sh")]).returncode == 0
