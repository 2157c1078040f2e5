"""Every registered model: the output contract, a `.keras` round trip, FLOPs against the profiler."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from common import tasks
from common.errors import ConfigError
from common.models import contract, flops, prior, registry
from common.models.layers import ev_pairs

VARIANTS = [registry.get(t, n) for t in tasks.NAMES for n in registry.names(t)]
NUM_CLASSES = {t.name: len(t.classes) for t in tasks.all_tasks()}
INPUTS = {t.name: t.input_shape for t in tasks.all_tasks()}


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: f"{v.task}-{v.name}")
def test_contract_and_round_trip(v: registry.Variant, tmp_path: Path):
    """Softmax exits named `early_exit` (T-RecX) or `exit_<i>` (prior methods, several-exit T-RecX) and `final`;
    several-exit T-RecX has an EV layer per exit (`ev_assist_<i>`, which the weight copy pairs with it); optional
    sigmoid `confidence_<i>` per early exit and a training-only `mixture`; loss weights by output name."""
    model = v.builder()
    assert model.input_shape[1:] == INPUTS[v.task]
    exits = contract.exit_names(model)
    if v.name == "baseline":
        assert exits == ["final"]
    elif v.name in prior.METHODS:
        assert exits[-1] == "final" and len(exits) >= 3 and all(e.startswith("exit_") for e in exits[:-1])
    elif v.name.startswith("trecx2_"):
        assert exits == ["exit_1", "exit_2", "final"]
        assert ev_pairs(model) == [("exit_1", "ev_assist_1"), ("exit_2", "ev_assist_2")]
    else:
        assert exits == ["early_exit", "final"]
    others = set(model.output_names) - set(exits)
    assert others <= {"mixture"} | {f"confidence_{e.split('_')[1]}" for e in exits[:-1]}
    x = np.random.default_rng(0).uniform(0, 255, (3, *INPUTS[v.task])).astype("float32")
    out = model(x, training=False)
    for name in exits:
        assert out[name].shape == (3, NUM_CLASSES[v.task])
        assert np.allclose(np.sum(out[name], axis=1), 1.0, atol=1e-5)  # softmax
    for name in others - {"mixture"}:
        assert out[name].shape == (3, 1) and np.all((out[name] >= 0) & (out[name] <= 1))
    assert set(v.weights_for(model)) <= set(model.output_names) and "final" in v.weights_for(model)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    again = loaded(x, training=False)
    for name in model.output_names:
        np.testing.assert_allclose(again[name], out[name], atol=1e-6)
    for layer in model.layers:  # the custom layers came back as themselves
        assert type(loaded.get_layer(layer.name)) is type(layer)


@pytest.mark.parametrize("v", [v for v in VARIANTS if v.name in ("baseline", "trecx", "pool_ee", "eefmaps_concat",
                                                                 "branchynet", "eenets")],
                         ids=lambda v: f"{v.task}-{v.name}")
def test_flops_match_the_tf_profiler(v: registry.Variant):
    model = v.builder()
    costs = flops.exit_costs(model)
    for name, c in costs.items():
        ours = c["mflops_alone"] * 1e6
        theirs = flops.profiler_flops(model, name)
        assert abs(ours - theirs) / theirs < 0.05, (name, ours, theirs)


def test_exit_costs_include_the_heads_a_sample_ran():
    model = registry.get("keyword_spotting", "trecx").builder()
    c = flops.exit_costs(model)
    assert c["final"]["mflops"] > c["final"]["mflops_alone"] > c["early_exit"]["mflops"]
    assert c["final"]["params"] == model.count_params()
    ee = model.get_layer("early_exit")
    assert c["final"]["mflops"] - c["final"]["mflops_alone"] == pytest.approx(
        sum(flops.layer_flops(s, [i], o) for s, i, o in ee.trace(ee.input.shape)) / 1e6)


def test_known_sizes_of_the_mlperf_baselines():
    """Parameter counts of the MLPerf Tiny reference models (78,666 / 24,908 / 221,794)."""
    counts = {t: registry.get(t, "baseline").builder().count_params() for t in NUM_CLASSES}
    assert counts == {"image_classification": 78666, "keyword_spotting": 24908, "visual_wake_words": 221794}


def test_unknown_variant_names_the_choices():
    with pytest.raises(ConfigError, match=r"known: .*trecx"):
        registry.get("image_classification", "nope")


def test_confidence_heads_are_charged_to_the_samples_that_pass_them():
    model = registry.get("keyword_spotting", "eenets").builder()
    c = flops.exit_costs(model)
    conf = sum(flops.layer_flops(model.get_layer(f"confidence_{i}"), [(None, 64)], (None, 1)) for i in (1, 2, 3)) / 1e6
    assert c["final"]["mflops"] - c["final"]["mflops_alone"] > conf > 0
    assert c["exit_1"]["mflops"] > c["exit_1"]["mflops_alone"]  # its own confidence head


# The last commit before ResNet-8 `trecx` became the paper's exit (cb78d8c): its trecx.keras is the
# depthwise-first layout, now `trecx_dwfirst`, and such files must keep loading.
BEFORE_PAPER_EXIT = "c64b5ce"


@pytest.mark.slow
def test_models_shipped_before_the_paper_exit_still_load(tmp_path: Path):
    """Every .keras in pretrained/ at BEFORE_PAPER_EXIT, read from git history, loads after import common
    and meets the output contract (skipped in a clone without that history)."""
    import subprocess

    from common.models import contract

    repo = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-tree", "-r", "--name-only", BEFORE_PAPER_EXIT, "pretrained"], cwd=repo,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"commit {BEFORE_PAPER_EXIT} is not in this clone's history")
    names = [n for n in listed.stdout.split() if n.endswith(".keras")]
    assert any(n.endswith("image_classification/trecx.keras") for n in names)
    for i, name in enumerate(names):
        blob = subprocess.run(["git", "show", f"{BEFORE_PAPER_EXIT}:{name}"], cwd=repo, capture_output=True, check=True)
        path = tmp_path / f"{i}.keras"
        path.write_bytes(blob.stdout)
        contract.check(keras.models.load_model(path, compile=False))


def test_the_paper_resnet8_exit_matches_its_published_shape():
    """ResNet-8 `trecx` is the block behind the paper's numbers: 1x1 conv 16->32, depthwise 2x2 stride 2,
    average pooling to 4x4x32 = 512, dense; EV on 32 of the final 64 channels (512) beside the final pool
    (64); 89.7K parameters in Table 1 (truncated: 89,780 with Keras' default biases)."""
    model = registry.get("image_classification", "trecx").builder()
    ee = model.get_layer("early_exit")
    shapes = {sub.name: out for sub, _, out in ee.trace((None, 32, 32, 16))}
    assert shapes["pointwise"] == (None, 32, 32, 32) and shapes["depthwise"] == (None, 16, 16, 32)
    assert shapes["flatten"] == (None, 512)
    assert model.get_layer("final").kernel.shape == (64 + 512, 10)
    assert model.count_params() == 89780


@pytest.mark.parametrize("task, ee_in, flat, final_in, params", [
    # DS-CNN: no 1x1 conv, depthwise 3x3 stride 2 on 32 of 64 channels, pool 2 -> 6x1x32; EV pooled to 32
    ("keyword_spotting", (None, 25, 5, 64), 192, 64 + 32, 28248),  # Table 1: 28.2K
    # MobileNetV1: 1x1 conv 32->64, depthwise 2x2 stride 2, pool 4 -> 3x3x64; EV flattened 3x3x32
    ("visual_wake_words", (None, 24, 24, 32), 576, 256 + 288, 226116),  # Table 1: 226.2K
])
def test_the_paper_exits_of_kws_and_vww_match_their_published_shape(task, ee_in, flat, final_in, params):
    model = registry.get(task, "trecx").builder()
    ee = model.get_layer("early_exit")
    assert ee.input.shape == ee_in
    assert {sub.name: out for sub, _, out in ee.trace(ee_in)}["flatten"] == (None, flat)
    assert model.get_layer("final").kernel.shape[0] == final_in
    assert model.count_params() == params


def test_exit_study_grid_is_registered_once_per_cell():
    for name in ("keyword_spotting", "visual_wake_words"):
        study = tasks.get(name).study
        cells = {study.name(p, w) for p in study.positions for w in study.widths}
        assert len(cells) == len(study.positions) * len(study.widths) and "trecx" in cells
        assert cells <= set(registry.names(name))
