"""The saga benchmark (`make bench`) stays runnable: a few seconds of its open-loop load, with its
invariant check, on every `make test`. Figures from so short a run mean nothing; that it runs does."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_saga_benchmark_runs_a_short_load_and_finds_every_invariant_holding(tmp_path: Path) -> None:
    output = tmp_path / "saga_load.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "bench/saga_load.py"), "--smoke", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(output.read_text())
    sustained = result["sustained"]
    assert sustained["invariants"] == "all hold", sustained
    assert sustained["accepted_per_s"] > 0
    assert sustained["not_terminal_after_drain"] == 0, sustained
    assert {"order-api", "payment-worker", "inventory-relay", "postgres", "kafka-1"} <= set(
        sustained["cpu_ms_per_order"]
    ), sustained["cpu_ms_per_order"]
