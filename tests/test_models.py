"""Every registered model: the output contract, a `.keras` round trip, FLOPs against the profiler."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import common
from common import flops, registry

VARIANTS = registry.all_variants()
NUM_CLASSES = {"image_classification": 10, "keyword_spotting": 12, "visual_wake_words": 2}
INPUTS = {"image_classification": (32, 32, 3), "keyword_spotting": (49, 10, 1), "visual_wake_words": (96, 96, 3)}


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: f"{v.task}-{v.name}")
def test_contract_and_round_trip(v: registry.Variant, tmp_path: Path):
    model = v.builder()
    assert model.input_shape[1:] == INPUTS[v.task]
    expected = ["final"] if v.name == "baseline" else ["early_exit", "final"]
    assert sorted(model.output_names) == sorted(expected)
    x = np.random.default_rng(0).uniform(0, 255, (3, *INPUTS[v.task])).astype("float32")
    out = model(x, training=False)
    for name in expected:
        assert out[name].shape == (3, NUM_CLASSES[v.task])
        assert np.allclose(np.sum(out[name], axis=1), 1.0, atol=1e-5)  # softmax
    assert set(v.loss_weights) == set(expected)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    again = loaded(x, training=False)
    for name in expected:
        np.testing.assert_allclose(again[name], out[name], atol=1e-6)
    if v.name not in ("baseline", "pool_ee"):  # the custom layers came back as themselves
        assert type(loaded.get_layer("early_exit")) is common.layers.EarlyExitBlock


@pytest.mark.parametrize("v", [v for v in VARIANTS if v.name in ("baseline", "trecx", "pool_ee", "eefmaps_concat")],
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
    with pytest.raises(KeyError, match=r"known: .*trecx"):
        registry.get("image_classification", "nope")
