"""the seeds command: T-RecX paired with its ablations per seed, and the verdict across seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.commands import seeds
from common.files import write_csv
from common.reporting import report


def _seed(out: Path, final: dict[str, float], curve_shift: dict[str, float]) -> Path:
    write_csv(out / "table1.csv", [{"model": m, "final_test_accuracy": a} for m, a in final.items()])
    for m, shift in curve_shift.items():
        write_csv(out / m / "benefit_curve_test.csv",
                  [{"rho": r, "accuracy": 0.8 + shift + 0.1 * r, "mflops": 1 + r} for r in (0.0, 0.5, 1.0)])
    return out


@pytest.mark.parametrize("shifts, expected", [((0.02, 0.03, 0.025), "better"), ((0.02, -0.03, 0.01), "within")])
def test_paired_gains_and_their_verdict(tmp_path: Path, shifts, expected):
    tables = {}
    for k, shift in enumerate(shifts):
        out = _seed(tmp_path / f"seed{k}", {"trecx": 0.9, "trecx_noev": 0.9 - shift},
                    {"trecx": shift, "trecx_noev": 0.0})
        rows = seeds.pair_gains(out)
        assert [r["model"] for r in rows] == ["trecx vs trecx_noev"]  # pairs with a missing model are skipped
        assert rows[0]["curve_gain_points"] == pytest.approx(100 * shift)
        assert rows[0]["final_gain_points"] == pytest.approx(100 * shift)
        tables[f"seed{k}"] = out / "comparisons.csv"
    summary = report.aggregate(tables, tmp_path / "comparisons.csv")
    assert {r["metric"] for r in summary} == {"curve_gain_points", "final_gain_points"}
    assert all(seeds.verdict(r).startswith(expected) and r["n"] == 3 for r in summary)


def test_one_seed_has_no_interval():
    assert seeds.verdict({"n": 1, "mean": 1.0, "ci95_low": 1.0, "ci95_high": 1.0}).startswith("one seed")


def test_mean_curves_average_seeds_on_their_shared_range(tmp_path: Path):
    from common.evaluation import plots

    paths = [_seed(tmp_path / f"seed{k}", {"trecx": 0.9}, {"trecx": shift}) / "trecx" / "benefit_curve_test.csv"
             for k, shift in enumerate((0.0, 0.02, 0.04))]
    rows = plots.mean_curves({"trecx": paths}, tmp_path / "fig.png", points=5)
    assert (tmp_path / "fig.png").exists() and len(rows) == 5
    assert rows[0]["mflops"] == 1 and rows[-1]["mflops"] == 2
    assert rows[0]["accuracy_mean"] == pytest.approx(82.0) and rows[-1]["accuracy_mean"] == pytest.approx(92.0)
    assert rows[0]["ci95_low"] < 82.0 < rows[0]["ci95_high"] and rows[0]["n"] == 3


def test_comparison_reports_the_seed_means(tmp_path: Path):
    from common.reporting import compare

    write_csv(tmp_path / "seeds" / "summary.csv", [
        {"model": "trecx", "metric": "early_exit_test_accuracy", "n": 3, "mean": 0.89, "ci95_low": 0.86,
         "ci95_high": 0.92, "values": "0.88 0.89 0.9"}])
    write_csv(tmp_path / "seeds" / "comparisons.csv", [
        {"model": "trecx vs trecx_noev", "metric": "final_gain_points", "n": 3, "mean": -0.26, "ci95_low": -0.81,
         "ci95_high": 0.29, "values": "0 0 0", "verdict": "within the interval (no difference shown)"}])
    text = "\n".join(compare.seeds_md(tmp_path))
    assert "| trecx | 3 | 89.00 [86.00, 92.00] |" in text
    assert "| trecx vs trecx_noev | final_gain_points | 3 | -0.26 [-0.81, +0.29] | within the interval" in text


def test_tested_only_aggregates_the_seeds_already_tested(tmp_path: Path, monkeypatch):
    """Seed 0 is the published models (results/<task>/table1.csv); seed 1 was tested into its seed folder.
    Only the models both seeds have are summarised; a seed not tested yet is a one-line error."""
    from common.errors import ConfigError
    from common.files import read_csv

    monkeypatch.setenv("TRECX_RESULTS", str(tmp_path / "results"))
    task = tmp_path / "results" / "image_classification"
    _seed(task, {"baseline": 0.85, "trecx": 0.84, "sdn": 0.83}, {})
    _seed(task / "seeds" / "seed1", {"baseline": 0.86, "trecx": 0.86}, {})
    argv = ["--task", "image_classification", "--seeds", "0", "1", "--publish-seed", "0", "--tested-only", "true",
            "--out-dir", str(task / "seeds")]
    seeds.main(argv)
    rows = {r["model"]: r for r in read_csv(task / "seeds" / "summary.csv")}
    assert set(rows) == {"baseline", "trecx"} and rows["trecx"]["n"] == 2
    assert rows["trecx"]["mean"] == pytest.approx(0.85) and rows["trecx"]["ci95_low"] < 0.84
    assert set(json.loads((task / "seeds" / "config.json").read_text())["tables"]) == {"seed0", "seed1"}
    with pytest.raises(ConfigError, match="seed 2"):
        seeds.main([*argv[:4], "2", *argv[4:]])
