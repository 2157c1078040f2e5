"""Researchers' own networks (examples/own_networks.py, written without the toolkit) through the whole chain:
attach, train, costs, calibrate (labelled and label-free), export int8, runtime; or a one-line refusal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from common import api

SPEC = importlib.util.spec_from_file_location("own_networks", Path(__file__).parents[1] / "examples/own_networks.py")
own = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = own  # dataclasses look their module up
SPEC.loader.exec_module(own)


@pytest.mark.parametrize("name", own.NETWORKS)
def test_a_researchers_network_runs_the_whole_chain_or_is_refused_in_one_line(name: str):
    rec = own.chain(name, epochs=2, samples=128)
    refusal = own.NETWORKS[name][2]
    if refusal:
        assert refusal in rec.get("refused", "") and "\n" not in rec["refused"]
        return
    assert "refused" not in rec, rec["refused"]
    assert rec["user_model_unchanged"] and rec["frozen_weights_unchanged"]
    for exit_name, mflops in rec["mflops"].items():  # every layer counted, as TF's profiler counts it
        assert mflops == pytest.approx(rec["profiler_mflops"][exit_name], rel=0.02)
    assert set(rec["certified_rho"]) == {"float_labelled", "float_label_free", "int8_labelled"}
    agrees = rec["runtime_agrees"]  # int8 against float Keras: the same exits, the same classes where Keras is sure
    assert agrees["exit"] >= 0.85 and agrees["label"] >= 0.8 and agrees["label_where_keras_is_sure"] >= 0.95, agrees


def test_a_frozen_nested_backbone_stays_frozen_and_is_tapped_by_its_path():
    model = api.attach_exit(own.nested_backbone(), "backbone/conv2")
    frozen = {la.name for la in model.layers if not la.trainable}
    assert frozen == {"backbone.conv1", "backbone.conv2", "backbone.pool", "backbone.conv3"}
    with pytest.raises(api.ModelError, match=r"has no layer 'backbone/nope'.*backbone/conv1"):
        api.attach_exit(own.nested_backbone(), "backbone/nope")
    with pytest.raises(api.ModelError, match="nests model 'backbone': share=True needs a flat model"):
        api.attach_exit(own.nested_backbone(), "backbone/conv2", share=True)


def test_user_layers_named_as_the_exits_own_are_renamed_in_the_copy():
    model = api.attach_exit(own.clashing_names(), "early_exit")
    names = [la.name for la in model.layers]
    assert {"user_early_exit", "user_ev_concat", "early_exit", "ev_concat", "final"} <= set(names)
    assert model.get_layer("early_exit").input is model.get_layer("user_early_exit").output
    with pytest.raises(api.ModelError, match="has a layer named 'early_exit', a name the exit's own layers take"):
        api.attach_exit(own.clashing_names(), "early_exit", share=True)
