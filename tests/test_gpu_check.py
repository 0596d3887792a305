"""scripts/gpu-check.sh, the one prepared GPU command: its dry run (every step at a tiny
size on the CPU, through the same code) ends with the figures against the targets, and
the parts it judges by can tell a pass from a failure."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "gpu-check.sh"
TARGETS = {"lesson", "throughput", "peak", "vmap"}


def _driver():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gpu_check = _driver()


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def dry_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("gpu-check") / "out"
    docs_json = ROOT / "docs" / "bench-gpu.json"
    before = docs_json.read_bytes() if docs_json.exists() else None
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # its python3 is this Python
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"OUT": str(out), "INITBENCH_DATA_DIR": str(data_dir), "PATH": path})
    after = docs_json.read_bytes() if docs_json.exists() else None
    assert before == after, "the dry run wrote docs/bench-gpu.json"
    return done, out


def test_the_dry_run_measures_every_figure_and_prints_the_summary_last(dry_run) -> None:
    done, out = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert {"gpu-summary.md", "bench-gpu.json", "gpu-check.log", "bench.json", "bench-scaling.json",
            "profile.txt"} <= set(files) and len(files) <= 8, files
    summary = (out / "gpu-summary.md").read_text()
    assert done.stdout.rstrip().endswith(summary.rstrip())  # the summary is printed last
    report = json.loads((out / "bench-gpu.json").read_text())
    assert report["mode"] == "dry run" and report["environment"]["device"] == "cpu"
    assert {name: s["status"] for name, s in report["steps"].items()} == {
        "pytest": "skipped", "lesson": "ok", "sweep": "ok", "kernels": "ok", "bench": "ok"}

    targets = {t["name"]: t for t in report["targets"]}
    assert set(targets) == TARGETS
    for t in targets.values():
        assert t["what"] in summary and t["goal"] in summary
        assert t["met"] in (True, False, None)
        if t["name"] == "vmap" and t["value"] is None:  # bench without the vmap peer: said so, not faked
            assert "bench has no vmap measurement" in summary
            continue
        assert _positive(t["value"]), t
    # 4 models per step on the CPU cannot meet targets set at 1,000 or more
    assert targets["throughput"]["met"] is False and targets["peak"]["met"] is False

    resume = report["resume"]
    assert resume["interrupted"] and resume["exit_status"] == 130 and 0 < resume["survived"] < resume["jobs"]
    assert resume["equal"] and resume["bitwise_equal"] and resume["jobs_compared"] == resume["jobs"]
    assert resume["in_store_before"] == resume["survived"] and resume["kept_untouched"]
    assert "resumed sweep = uninterrupted | equal" in summary

    assert [r["models"] for r in report["scaling"]] == [2, 4]
    for row in report["scaling"]:
        assert all(_positive(row[k]) for k in ("seconds_per_step", "model_epochs_per_second", "memory_bytes",
                                               "products_flops_per_second"))
    assert _positive(report["fp32_peak"]["sgemm"]["flops_per_second"])
    assert report["fp32_peak"]["step_flops_per_model"] == 100_710_400
    lesson = report["lesson"]
    assert _positive(lesson["train_seconds"]) and _positive(lesson["compare_seconds"])
    assert set(lesson["val_acc_by_scheme"]) == set(gpu_check.LESSON_SCHEMES)
    assert _positive(report["sweep"]["jobs_per_second"]) and report["sweep"]["figures"]["jobs"] == resume["jobs"]
    per = report["bench"]["seconds_per_model_epoch"]
    assert all(_positive(per[k]) for k in ("floor", "batched", "sequential"))
    assert "top 25 by CPU time" in (out / "profile.txt").read_text()


def test_the_summary_says_what_the_dry_run_skipped(dry_run) -> None:
    summary = (dry_run[1] / "gpu-summary.md").read_text()
    assert "| pytest | skipped |" in summary and "dry run: the CUDA tests skip without CUDA" in summary
    assert "| install | skipped (dry run) |" in summary


def test_steps_that_measured_nothing_still_give_a_summary() -> None:
    """On the device every step may fail or run out of time: the summary is still written,
    each target not measured and not judged, each step with its status and error."""
    outcomes = {name: gpu_check.Outcome("timeout", 70.0, 70.0, "killed after 70 s") for name in gpu_check.STEPS}
    outcomes["sweep"] = gpu_check.Outcome("failed", 3.0, 90.0, "sweep: exit status 1: CUDA out of memory")
    report = gpu_check.assemble({name: {} for name in gpu_check.STEPS}, outcomes, {}, "ok", gpu_check.GPU, 9.0)
    assert [(t["value"], t["met"]) for t in report["targets"]] == [(None, None)] * 4
    summary = gpu_check.markdown(report)
    assert summary.count("not measured") == 4 and "not checked: sweep: exit status 1: CUDA out of memory" in summary
    assert "| kernels | timeout | 70.0 of 70 | killed after 70 s |" in summary
    json.dumps(gpu_check.clean(report), allow_nan=False)


def test_stores_that_differ_are_not_called_equal() -> None:
    """The resume check's comparison: equal within rounding passes, a changed accuracy, a
    loss beyond rtol 1e-5 or a missing job fails."""
    def row(acc: float = 0.8, loss: float = 0.5) -> dict:
        return {"acc": [acc, 0.79, acc], "loss": [loss, loss], "diverged_at": None,
                "losses": np.array([2.3, 1.0, loss], dtype="<f4"), "finished": "t"}

    base = {"a": row(), "b": row(0.7)}
    assert gpu_check.compare_stores(base, {"a": row(), "b": row(0.7)})["bitwise_equal"]
    close = gpu_check.compare_stores(base, {"a": row(loss=0.5 * (1 + 2e-6)), "b": row(0.7)})
    assert close["equal"] and not close["bitwise_equal"] and 0 < close["max_relative_loss_difference"] < 1e-5
    assert not gpu_check.compare_stores(base, {"a": row(0.8 + 1 / 12000), "b": row(0.7)})["equal"]
    worse = gpu_check.compare_stores(base, {"a": row(loss=0.5001), "b": row(0.7)})
    assert not worse["equal"] and worse["jobs_differing"] == 1
    assert not gpu_check.compare_stores(base, {"a": row()})["equal"]


def test_junit_counts_and_time_shares(tmp_path: Path) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
                   '<testcase name="ok[cuda]"/><testcase name="bad[cuda]"><failure message="assert 1 == 2"/>'
                   '</testcase><testcase name="skip[cuda]"><skipped/></testcase></testsuite></testsuites>')
    counts = gpu_check.junit_counts(xml)
    assert (counts["tests"], counts["passed"], counts["failures"], counts["skipped"]) == (3, 1, 1, 1)
    assert counts["failed"] == ["bad[cuda]: assert 1 == 2"]
    assert gpu_check.junit_counts(tmp_path / "absent.xml")["tests"] == 0
    caps = {"a": 100, "b": 50, "c": 50}
    assert gpu_check.timeout_for("a", caps, ["b", "c"], 250) == 150  # what earlier steps left passes on
    assert gpu_check.timeout_for("a", caps, ["b", "c"], 100) == 50  # short of time: its share
