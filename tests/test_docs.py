"""Generated documents never go stale: the committed SUMMARY.md and README results table are what the
committed results generate, and the docs name only commands that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from common import paths, tasks
from common.commands import COMMANDS
from common.commands.reproduce import shipped
from common.errors import ConfigError
from common.reporting import digest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_summary_md_is_what_the_committed_results_generate():
    results = {t.name: paths.results_dir() / t.name for t in tasks.all_tasks() if shipped(t)}
    want = digest.summary_md(results, "Results summary")
    assert (paths.results_dir() / "SUMMARY.md").read_text() == want, "rerun: python -m common reproduce"


def test_readme_results_table_is_what_the_committed_results_generate():
    readme = (REPO / "README.md").read_text()
    assert digest.with_results_table(readme, digest.results_table(paths.results_dir())) == readme, \
        "rerun: python -m common reproduce"


def test_every_committed_targets_file_has_the_one_row_shape():
    import csv

    from common.reporting.targets import COLUMNS

    found = sorted((REPO / "results").rglob("*targets.csv"))
    assert found
    for path in found:
        with open(path) as f:
            assert tuple(next(csv.reader(f))[:len(COLUMNS)]) == COLUMNS, f"{path}: rerun the command that writes it"


def test_every_committed_benchmark_describes_its_deployment():
    from common.reporting.board import firmware_records, read_benchmark

    folders = sorted(p.parent for p in (REPO / "results").glob("*/deploy/*/deploy.json"))
    assert folders
    for folder in folders:
        read_benchmark(folder)  # a benchmark.json of another deployment raises
        firmware_records(folder, "firmware_*.json")  # and so does a firmware record


def test_a_benchmark_of_other_thresholds_is_refused_in_one_line(tmp_path: Path):
    from common.errors import ModelFileError
    from common.reporting.board import read_benchmark

    (tmp_path / "deploy.json").write_text(json.dumps({"variant": "trecx_plus", "rhos": [0.95]}))
    (tmp_path / "benchmark.json").write_text(json.dumps({"task": "t", "variant": "trecx_plus", "rhos": [0.95]}))
    assert read_benchmark(tmp_path)["rhos"] == [0.95]
    (tmp_path / "benchmark.json").write_text(json.dumps({"task": "t", "variant": "trecx_plus", "rhos": [0.92]}))
    with pytest.raises(ModelFileError, match=r"at rhos \[0.92\], but deploy.json deploys trecx_plus at \[0.95\]"):
        read_benchmark(tmp_path)


def test_the_results_table_replaces_only_what_lies_between_its_markers():
    text = f"intro\n{digest.BEGIN}\nold\n{digest.END}\nafter\n"
    want = f"intro\n{digest.BEGIN}\n| a |\n|---|\n{digest.END}\nafter\n"
    assert digest.with_results_table(text, ["| a |", "|---|"]) == want
    with pytest.raises(ConfigError, match=r"README\.md"):
        digest.with_results_table("no markers\n", ["x"])


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_only_commands_that_exist(doc: Path):
    named = set(re.findall(r"python -m common ([a-z_]+)", doc.read_text()))
    assert named <= set(COMMANDS), sorted(named - set(COMMANDS))
    assert not re.findall(r"python -m common\.(?!commands)[a-z_]+", doc.read_text())  # the old module paths


def test_the_readme_stays_a_front_door():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


def test_what_the_docs_say_of_the_calibration_splits_is_what_the_deployments_hold():
    """docs/calibration.md and docs/deployment.md: each task's calibration split size and the automatic budget it
    gets, read back from the deployments; and every deployment's certificate reads the calibration split."""
    for task, n, points in (("image_classification", 2500, 1), ("keyword_spotting", 260, 3),
                            ("visual_wake_words", 100, 3)):
        for path in (paths.CHECKOUT / "results" / task / "deploy").glob("*/deploy.json"):
            dep = json.loads(path.read_text())
            auto = dep["budget"]["chosen_by"] != "--drop-points"
            assert dep["budget"]["calibration_samples"] == n and (dep["budget"]["points"] == points or not auto), path
            t = dep["thresholds_by_rule"]["certified"]
            assert t["chosen_on"] == f"int8 outputs on TFLM of the calibration split ({n} samples)", path
            val = dep["data"]["counts"]["val"]
            assert dep["thresholds_by_rule"]["validation"]["chosen_on"].endswith(f"validation split ({val} samples)")
    flat = " ".join((paths.CHECKOUT / "docs" / "deployment.md").read_text().split())
    assert "IC's 2,500 calibration images get a 1-point budget, KWS's 260 clips and VWW's 100 images 3 points" in flat
    flat = " ".join((paths.CHECKOUT / "docs" / "calibration.md").read_text().split())
    assert "2,500 CIFAR-10 images, 260 Speech Commands clips and 100 VWW images" in flat


def test_placement_md_worked_case_is_what_the_results_files_hold():
    """docs/placement.md, "The VWW case": each number it cites, read back from the files the commands wrote."""
    import csv

    res = paths.CHECKOUT / "results" / "visual_wake_words"
    text = " ".join((paths.CHECKOUT / "docs" / "placement.md").read_text().split())
    placed = json.loads((res / "placement.json").read_text())
    heads = list(csv.DictReader(open(res / "placement_heads.csv")))
    early = [max(float(h["exit_accuracy"]) for h in heads if int(h["position"]) == p) for p in (0, 1, 2)]
    fw = json.loads((res / "deploy" / "trecx2" / "firmware_cortex-m4_cmsis_nn.json").read_text())
    at5 = json.loads((res / "deploy" / "trecx2_5pt" / "firmware_cortex-m4_cmsis_nn.json").read_text())
    plus = json.loads((res / "deploy" / "trecx_plus" / "firmware_cortex-m4_cmsis_nn.json").read_text())
    assert fw["threshold"]["rhos"] is None and at5["threshold"]["certified"]  # 3 points: nothing; 5: certified
    pair = next(r for r in csv.DictReader(open(res / "placement.csv")) if r["cost"] == "cortex-m4/cmsis_nn"
                and r["rule"] == "validation" and r["budget_points"] == "1.0" and r["taps"] == "re_lu_10 re_lu_15")
    best_pair = max((r for r in csv.DictReader(open(res / "placement.csv")) if r["cost"] == "cortex-m4/cmsis_nn"
                     and r["rule"] == "validation" and r["budget_points"] == "1.0" and r["k"] == "2"),
                    key=lambda r: float(r["cut_pct"] or -1))
    seg = fw["instructions"]["per_segment_when_run"]
    shipped = json.loads((paths.CHECKOUT / "pretrained" / "visual_wake_words" / "trecx2.config.json").read_text())
    cuts = shipped["validation_cut_pct"]
    plus_cut = json.loads((paths.CHECKOUT / "pretrained" / "visual_wake_words" / "trecx_plus.config.json").read_text())
    said = [f"took {placed['cpu_minutes']:.1f} CPU-minutes", f"{len({h['tap'] for h in heads})} candidate taps",
            f"{len(heads)} heads", f"are {100 * min(early):.1f} to {100 * max(early):.1f}% accurate",
            f"rank correlation {placed['disagreement']['single_exit_rank_correlation']:.2f}",
            f"{float(pair['exit_cost'].split()[0]):.2f} M instructions to leave at the first exit and "
            f"{float(pair['exit_cost'].split()[1]):.2f} M",
            f"the first segment ran {seg['head'] / 1e6:.2f} M, and the first two "
            f"{(seg['head'] + seg['mid_1']) / 1e6:.2f} M",
            f"cuts {at5['instruction_cut_pct']:.1f}% of the instructions against {at5['flops_cut_pct']:.1f}% of the "
            f"FLOPs, a ratio of {at5['instruction_to_flops_cut_ratio']:.2f}", f"as `trecx_plus` does "
            f"({plus['instruction_cut_pct']:.1f}% instructions cut)",
            f"test drop of {at5['threshold']['test']['drop_points']:.1f} points"]
    for s in said:
        assert s in text, s
    assert best_pair["taps"] == "re_lu_10 re_lu_15" and shipped["shipped_from"] == "trecx2_placed"
    assert cuts["trecx2_placed"] > plus_cut["validation_cut_pct"]["trecx_ee6_none"]
    rows = csv.DictReader(open(paths.CHECKOUT / "results" / "placement_targets.csv"))
    assert not any(r["met"] == "True" for r in rows if r["target"].startswith("VWW"))
