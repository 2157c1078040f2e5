"""T-RecX for any single-input Keras functional classifier: attach the early exit after a named layer,
train it (jointly, or on the frozen backbone), then measure, calibrate, export and run it with the rest of
the toolkit (docs/api.md):

    from common import api
    model = api.attach_exit(my_cnn, after="block_3_relu")              # the paper's EE block (+ EV assist)
    api.train_exit(model, train_ds, val_ds, epochs=20, w_ee=0.5)        # joint loss, EE->EV weight copy
    costs = api.exit_costs(model)                                       # MFLOPs to each exit
    cal = api.calibrate_exit(model, x_val, y_val, base_right, max_drop=0.01)   # rho with a guarantee
    graphs = api.export_int8(model, x_calibration)                      # int8 graphs split at the exit
    cal = api.calibrate_exit(graphs, x_val, y_val, base_right)          # certified on what will run
    runtime = api.runtime(graphs, cal); runtime(x_val[0]).exit          # "early_exit" or "final"
    api.export_sources(graphs, cal, "my_firmware/")                     # C++ for your own TFLM firmware
    rec = api.firmware(graphs, cal, x_test, baseline_graph)             # on an emulated Cortex-M4
    api.exit_costs(model, cost="cortex-m4/cmsis_nn", x=x_train[:64])   # + instructions per exit on the board
    found = api.place_exits(my_cnn, train_ds, (x_val, y_val), cost="cortex-m4/cmsis_nn", cost_x=x_train[:64])
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers

from common.errors import ModelError
from common.evaluation import calibrate
from common.models import contract, flops
from common.models.graph import functional
from common.models.layers import _reg, ev_pairs
from common.models.paper_exit import PaperConfig, exit_heads
from common.train.callbacks import EVWeightTransfer

POOLINGS = (layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D, layers.GlobalMaxPooling1D,
            layers.GlobalMaxPooling2D)


def _producer(tensor):
    return tensor._keras_history[0]


def _ancestors(tensor) -> set[int]:
    """Ids of every tensor the value of `tensor` is computed from (itself included)."""
    seen, stack = set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        history = getattr(t, "_keras_history", None)
        if history is None:
            continue
        node = history[0]._inbound_nodes[history[1]]
        stack.extend(node.input_tensors)
    return seen


PASS_THROUGH = (layers.Activation, layers.Softmax, layers.Reshape, layers.Flatten, layers.Dropout)


def _through(tensor):
    """Walk back from `tensor` over weightless reshaping layers (activation, reshape, flatten, dropout);
    returns (the first other layer, whether a softmax was passed)."""
    softmax = False
    layer = _producer(tensor)
    while isinstance(layer, PASS_THROUGH):
        softmax |= isinstance(layer, layers.Softmax) or _activation(layer) == "softmax"
        layer = _producer(layer.input)
    return layer, softmax


def _activation(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "")


def classifier(model: keras.Model) -> layers.Layer:
    """The model's classifier: a Dense layer, or a 1x1 Conv2D as in keras.applications.MobileNet, followed
    (through reshapes) by a softmax; a one-line ModelError naming the model when there is none."""
    if len(model.inputs) != 1:
        raise ModelError(f"model '{model.name}' has {len(model.inputs)} inputs: an early exit needs a single-input "
                         "classifier")
    if isinstance(model.output, (dict, list, tuple)):
        raise ModelError(f"model '{model.name}' has several outputs: give it a single softmax classifier output")
    layer, softmax = _through(model.output)
    dense = isinstance(layer, layers.Dense) or (isinstance(layer, (layers.Conv1D, layers.Conv2D)) and
                                                set(layer.kernel_size) == {1})
    if not dense or not (softmax or _activation(layer) == "softmax"):
        raise ModelError(f"model '{model.name}' does not end in a softmax classifier (its last weighted layer "
                         f"'{layer.name}' is a {type(layer).__name__}{'' if softmax else ', with no softmax after'})")
    return layer


def _crossing(model: keras.Model, tap, after: str) -> None:
    """A one-line ModelError when the network after the cut at `tap` reads a tensor from before it (a skip
    connection across the cut): the segments hand over one feature map, so the rest must be computed from it."""
    before = _ancestors(tap) - {id(tap)}
    seen, stack = set(), [model.output]
    while stack:
        t = stack.pop()
        if t is tap or id(t) in seen:
            continue
        seen.add(id(t))
        layer, index = t._keras_history[0], t._keras_history[1]
        for x in layer._inbound_nodes[index].input_tensors:
            if id(x) in before:
                raise ModelError(f"layer '{layer.name}' of model '{model.name}' reads '{_producer(x).name}' from "
                                 f"before the exit after '{after}' (a skip connection across the cut): tap the block "
                                 "after its merge, or earlier, so the rest of the network reads that map alone")
            stack.append(x)


def _tap(model: keras.Model, after: str, addresses: dict[str, str]):
    """The feature map layer `after` (the user's address: `layer`, or `backbone/layer` inside a nested model)
    outputs in `model` (the flat copy, whose names `addresses` maps to)."""
    try:
        layer = model.get_layer(addresses.get(after, after))
    except ValueError:
        names = [a for a, n in addresses.items() if len(getattr(model.get_layer(n).output, "shape", ())) in (3, 4)]
        raise ModelError(f"model '{model.name}' has no layer '{after}' on the path from its input to its output "
                         f"(layers with a feature map: "
                         f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''})") from None
    tap = layer.output
    if id(tap) not in _ancestors(model.output):
        raise ModelError(f"layer '{after}' of model '{model.name}' is not on the path to its output")
    if len(tap.shape) not in (3, 4) or None in tap.shape[1:]:
        raise ModelError(f"layer '{after}' of model '{model.name}' outputs shape {tuple(tap.shape)}: the exit needs "
                         "a feature map of fixed size, (batch, height, width, channels) or (batch, steps, channels)")
    return tap


def attach_exit(model: keras.Model, after: str | list[str], pointwise: int | list[int | None] | None = None,
                kernel: int = 2, strides: int = 2, pool: int | None = None, ev_assist: bool = True, l2: float = 0.0,
                share: bool = False) -> keras.Model:
    """`model` with the paper's early exit after layer `after` (Sec. 4.2: a 1x1 conv to `pointwise` channels,
    default twice the tap's, 0 for none, or a list of these, one per exit; a depthwise `kernel` conv of stride
    `strides` + ReLU; average pooling by `pool`, default down to at most 4x4; a softmax dense; the same in 1-D
    on a Conv1D network's (steps, channels) maps), outputs {"early_exit", "final"} by the project's
    contract; or, with a list of layers in order from the input, one such exit after each, outputs {"exit_1",
    ..., "exit_k", "final"}. `ev_assist` (Sec. 4.3) concatenates an early view of the last feature map per
    exit (that exit's depthwise kernel, copied in while training) before a new final classifier, which starts
    from the old one's weights (exactly the old classifier without EV). `model` (functional or Sequential) is
    left as it was: the exit goes on a copy of it, unless `share` (the backbone's layers then are `model`'s,
    and training the exit trains them)."""
    model, addresses = functional(model, share)
    final_layer = classifier(model)
    several = not isinstance(after, str)
    afters = list(after) if several else [after]
    if several and not afters:
        raise ModelError(f"model '{model.name}': attach_exit needs at least one layer name in `after`")
    taps = [_tap(model, a, addresses) for a in afters]
    for a, tap in zip(afters, taps, strict=True):
        _crossing(model, tap, a)
    for a, b, ta, tb in zip(afters, afters[1:], taps, taps[1:], strict=False):
        if id(ta) not in _ancestors(tb) or ta is tb:
            raise ModelError(f"model '{model.name}': exit layers must be in order from the input, but '{b}' does not "
                             f"come after '{a}'")
    classes = final_layer.kernel.shape[-1]
    features = final_layer.input
    if len(features.shape) > 2:  # a 1x1 conv classifier reads a 1x1 map
        features = layers.Flatten(name="final_flatten")(features)
    last = None
    if ev_assist:
        pooling, _ = _through(final_layer.input)
        if not isinstance(pooling, POOLINGS):
            raise ModelError(f"model '{model.name}': ev_assist needs a global pooling before its classifier (found "
                             f"'{pooling.name}', a {type(pooling).__name__}); pass ev_assist=False")
        last = pooling.input
    widths = list(pointwise) if isinstance(pointwise, (list, tuple)) else [pointwise] * len(afters)
    if len(widths) != len(afters):
        raise ModelError(f"model '{model.name}': {len(afters)} exit layers but {len(widths)} pointwise widths")
    cfgs = []
    rank = len(last.shape) - 2 if last is not None else len(taps[0].shape) - 2
    for after_name, tap, pw in zip(afters, taps, widths, strict=True):
        if len(tap.shape) - 2 != rank:
            raise ModelError(f"layer '{after_name}' of model '{model.name}' gives a {len(tap.shape) - 2}-D map where "
                             f"the network's others are {rank}-D: every exit and the final features share one rank")
        channels = tap.shape[-1]
        width = 2 * channels if pw is None else pw
        side = -(-min(tap.shape[1:-1]) // strides)  # the map's smaller side after the strided conv
        cfgs.append(PaperConfig(pointwise=width, channels=0, kernel=kernel, strides=strides,
                                pool=max(1, side // 4) if pool is None else pool,
                                ev_channels=min(width or channels, last.shape[-1]) if last is not None else 0,
                                ev_strides=1, ev_global_pool=True, rank=rank))
    exits, views = exit_heads(taps, last, classes, cfgs, ev_assist=last is not None, l2=l2, numbered=several)
    if views:
        features = layers.Concatenate(name="ev_concat")([features, *views])
    final = layers.Dense(classes, activation="softmax", kernel_regularizer=_reg(l2), name=contract.FINAL)(features)
    built = contract.model(model.inputs[0], final, early=None if several else exits[0], exits=exits if several else (),
                           name=f"{model.name}_trecx")
    kernel_old, *bias = final_layer.get_weights()
    kernel_old = kernel_old.reshape(-1, classes)
    kernel_new = np.zeros(built.get_layer(contract.FINAL).kernel.shape, dtype=kernel_old.dtype)
    kernel_new[: kernel_old.shape[0]] = kernel_old
    built.get_layer(contract.FINAL).set_weights([kernel_new, bias[0] if bias else np.zeros(classes, "float32")])
    return built


def train_exit(model: keras.Model, train_ds, val_ds=None, epochs: int = 10, w_ee: float | list[float] = 0.5,
               post_training: bool = False, optimizer: keras.optimizers.Optimizer | None = None,
               transfer_until: float = 0.8, callbacks: list | None = None) -> keras.callbacks.History:
    """Train an attached exit on batched (x, y) data (y: class indices). Joint training: loss = w_ee x
    CE(early) + CE(final) (with several exits, `w_ee` one weight for all or a list, one per exit), each EE
    depthwise kernel copied into its EV layer after every batch for the first `transfer_until` of the epochs.
    `post_training`: only the exit heads and the final classifier train, the backbone stays as it is
    (PTEENet-style, for a model you cannot retrain)."""
    from common.train.training import compile_model, keyed

    names = contract.exit_names(model)
    if post_training:  # otherwise the layers keep the trainable flags they came with (frozen ones stay frozen)
        for layer in model.layers:
            layer.trainable = contract.is_head(layer.name) or layer.name == contract.FINAL
    weights = list(w_ee) if isinstance(w_ee, (list, tuple)) else [w_ee] * (len(names) - 1)
    if len(weights) != len(names) - 1:
        raise ModelError(f"model '{model.name}' has {len(names) - 1} early exits but w_ee gives {len(weights)} weights")
    compile_model(model, dict(zip(names[:-1], weights, strict=True)) | {contract.FINAL: 1.0},
                  optimizer or keras.optimizers.Adam(1e-3))
    extra = [EVWeightTransfer(until_fraction=transfer_until, total_epochs=epochs)] if ev_pairs(model) else []
    return model.fit(keyed(train_ds, names), validation_data=None if val_ds is None else keyed(val_ds, names),
                     epochs=epochs, callbacks=[*extra, *(callbacks or [])], verbose=2)


def _keyed(model: keras.Model) -> tuple[keras.Model, bool]:
    """`model` with its outputs by name, and whether it is a network without exits (a baseline, or Sequential):
    then a flat copy whose one output is `final`."""
    if isinstance(getattr(model, "_outputs_struct", None), dict):
        return model, False
    copy = functional(model, share=False)[0]
    return keras.Model(copy.inputs, {contract.FINAL: copy.outputs[0]}, name=copy.name), True


def exit_costs(model: keras.Model, cost: str = "flops", x: np.ndarray | None = None) -> dict[str, dict]:
    """MFLOPs and parameters to leave at each exit (cumulative, exit heads passed included); with a device
    `cost` ("cortex-m4/cmsis_nn", `edge.costmodel`), also `minstructions`: millions of instructions to leave
    there on that device, from a profiled firmware run of the model's int8 graphs (calibrated on `x`, training
    inputs), or from the instructions-per-MAC table where no firmware can be built (`cost_source` says which)."""
    from common.edge import costmodel

    model, baseline = _keyed(model)
    out = flops.baseline_costs(model) if baseline else flops.exit_costs(model)
    basis = costmodel.parse(cost)
    if not basis.cpu:
        return out
    if x is None:
        raise ModelError(f"exit_costs with cost '{cost}' needs x: training inputs to calibrate the int8 graphs")
    per_segment, source = costmodel.segment_costs(export_int8(model, x), x[:4], basis)
    for name, c in zip(out, costmodel.cumulative(per_segment), strict=True):
        out[name] |= {"minstructions": c, "cost_source": source}
    return out


def cost_vector(model, cost: str = "flops", x: np.ndarray | None = None) -> list[float]:
    """Cumulative cost to leave at each exit, in exit order, as the sweeps, `coordinate_search` and the
    certification take it: MFLOPs (`cost` "flops"; int8 graphs: 2 x their MACs) or a device's millions of
    instructions (`exit_costs`; int8 graphs are profiled as they are, `x` their float inputs)."""
    from common.edge import costmodel

    basis = costmodel.parse(cost)
    if isinstance(model, keras.Model):
        got = exit_costs(model, cost, x)  # in exit order, the final exit last
        return [c["minstructions" if basis.cpu else "mflops"] for c in got.values()]
    graphs = list(getattr(model, "graphs", model))
    if not basis.cpu:
        from common.edge.board import graph_mflops

        return graph_mflops(graphs)
    if x is None:
        raise ModelError(f"cost '{cost}' of int8 graphs needs x: a few of their float inputs to run them on")
    return costmodel.cumulative(costmodel.segment_costs(graphs, x[:4], basis)[0])


def place_exits(model: keras.Model, train_ds, cal: tuple, k: tuple[int, ...] = (1, 2, 3), cost: str = "flops",
                test: tuple | None = None, **options):
    """Where exits should go on `model` (a baseline classifier) for a cost basis (`studies.placement.place`): a
    head trained on the frozen backbone after every candidate layer (post-training), every position and every
    ordered pair and triple scored by its cut at the budget, rho chosen on `cal` = (x, y) or certified there;
    `options`: widths, taps, budgets, epochs, beam, cost_x (training inputs, for a device cost), ... Returns
    the `Placement` (its `ranking`, `heads`, `best(cost, rule, budget, k)`, `cpu_seconds`); train the winner
    with `attach_exit` + `train_exit` (docs/placement.md)."""
    from common.studies.placement import place

    return place(model, train_ds, cal, test, ks=tuple(k), cost=cost, **options)


def outputs(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    """Every exit's softmax on the rows of x, in exit order (the final exit last)."""
    from common.evaluation.evaluate import predict

    out = predict(model, x)
    return [out[n] for n in contract.exit_names(model)]


def _int8_outputs(graphs, x: np.ndarray) -> list[np.ndarray]:
    """Every exit's probabilities from the int8 graphs (or their runtime) on the rows of x, as they will run."""
    from common.edge.runtime import MultiExitRuntime

    rt = graphs if isinstance(graphs, MultiExitRuntime) else MultiExitRuntime(list(graphs), [0.0] * (len(graphs) - 1))
    return rt.outputs(x)


def calibrate_exit(model, x: np.ndarray, y: np.ndarray | None = None, base_right: np.ndarray | None = None,
                   max_drop: float = 0.01, delta: float = 0.05, per_exit: bool = False,
                   costs: list[float] | None = None, cost: str = "flops",
                   cost_x: np.ndarray | None = None) -> calibrate.Calibration:
    """Thresholds certified on (x, y) to keep the accuracy drop against a baseline (its per-sample correctness
    `base_right`) within `max_drop` with probability >= 1 - delta; without labels (y None), to keep the
    disagreement with the model's own final exit within `max_drop`. `model`: the Keras model (its float
    outputs), or, to certify what will run, the int8 graphs of `export_int8` or their `runtime`. `per_exit`: a
    threshold per early exit (`calibrate.calibrate_per_exit`: half of x orders the candidates, half tests
    them). The cheapest certified threshold is the cheapest in `cost`: "flops", or a device such as
    "cortex-m4/cmsis_nn" (`cost_vector`, `cost_x` its inputs; default x); `costs` gives the cumulative cost per
    exit directly."""
    if isinstance(model, keras.Model):
        probs, on = outputs(model, x), "float Keras outputs"
    else:
        probs, on = _int8_outputs(model, x), "int8 graph outputs"
    cum = costs or cost_vector(model, cost, x if cost_x is None else cost_x)
    calibrate.check(probs, y, cum, base_right, max_drop, delta)  # before any arithmetic on mismatched lengths
    if y is None:
        cal = calibrate.calibrate_label_free(probs, cum, max_drop, delta)
    else:
        right = probs[-1].argmax(axis=1) == y if base_right is None else base_right
        cal = (calibrate.calibrate_per_exit(probs, y, cum, right, max_drop, delta) if per_exit
               else calibrate.calibrate(probs, y, cum, right, max_drop, delta))
    return dataclasses.replace(cal, samples=f"{cal.samples}; {on}")


def export_int8(model: keras.Model, calibration_x: np.ndarray, pooling: str = "mean") -> list[bytes]:
    """Full-integer int8 TFLite graphs of the model split at its exits (`edge.export.split_at_exits`): for one
    exit, the head (input -> early exit + feature map) and the tail (feature map -> final); for k exits, k + 1
    segments. Each is calibrated on what it reads from `calibration_x` (training data). `pooling`: global average
    pooling as MEAN, or "average_pool" (AVERAGE_POOL_2D, which CMSIS-NN runs far faster; `edge.export`)."""
    from common.edge.export import split_at_exits, to_tflite
    from common.evaluation.evaluate import predict

    model, _ = _keyed(model)  # a baseline: one graph, its output "final"
    graphs, x = [], calibration_x
    for segment in split_at_exits(model):
        graphs.append(to_tflite(segment, x, len(x), pooling))
        if "features" in segment.output:
            x = predict(segment, x)["features"]
    return graphs


def thresholds(rho: float | list[float] | None, exits: int) -> list[float]:
    """One threshold per early exit from a shared `rho`, a list, or None (never exit: the full model runs)."""
    from common.edge.board import check_rhos

    return [float("inf") if r is None else r for r in check_rhos(rho, exits + 1)]


def _rhos(rho, exits: int) -> list[float]:
    """Thresholds from a shared rho, a list, None, or a Calibration (its certified thresholds; nothing certified:
    never exit). A calibration of the float outputs is refused: it does not cover the int8 graphs."""
    if isinstance(rho, calibrate.Calibration):
        if "float Keras outputs" in rho.samples:
            raise ModelError("this calibration certified the float Keras outputs, not the int8 graphs that will run: "
                             "calibrate_exit(graphs, ...) certifies the graphs themselves")
        rho = rho.thresholds(exits)
    return thresholds(rho, exits)


def runtime(graphs: list[bytes], rho):
    """The batch-1 early-exit runtime over the int8 graphs of `export_int8`: leaves at the first exit whose max
    softmax is >= its threshold (`rho`: one for all exits, one per exit, None: never, the full model runs, or
    the Calibration of `calibrate_exit(graphs, ...)`: the thresholds certified on these graphs)."""
    from common.edge.runtime import MultiExitRuntime

    return MultiExitRuntime(list(graphs), _rhos(rho, len(graphs) - 1))


def save_graphs(graphs: list[bytes], out, baseline: bytes | None = None) -> list:
    """Write the segments as out/segment_<i>.tflite (and baseline.tflite): the folder `python -m common firmware
    --graphs-dir` and `export_sources --graphs-dir` read."""
    from pathlib import Path

    from common import files

    out, written = Path(out), []
    for name, g in [*((f"segment_{i}.tflite", g) for i, g in enumerate(graphs)),
                    *((("baseline.tflite", baseline),) if baseline is not None else ())]:
        with files.atomic(out / name) as tmp:
            tmp.write_bytes(g)
        written.append(out / name)
    return written


def export_sources(graphs: list[bytes], rho, out, arena_bytes: int | None = None, namespace: str = "trecx_model"):
    """C++ sources for your own firmware (docs/deployment.md, "In your own firmware"): the graphs as arrays and
    the thresholds (`rho` as in `runtime`) in trecx_model.h/.cc, beside trecx_runner.h/.cc, the early-exit runner
    over TFLM's MicroInterpreter (one tensor arena). Returns what they hold (`edge.sources.Spec`)."""
    from pathlib import Path

    from common.edge.board import segment_sources

    return segment_sources(list(graphs), _rhos(rho, len(graphs) - 1), Path(out), arena_bytes, namespace)


def firmware(graphs: list[bytes], rho, x: np.ndarray, baseline: bytes, cpu: str = "cortex-m4",
             kernels: str = "cmsis_nn", costs: list[float] | None = None, baseline_mflops: float | None = None,
             profile: bool = True) -> dict:
    """Build the early-exit firmware of `graphs` at `rho` (as in `runtime`) and the `baseline` graph's from the
    exported sources, run both on an emulated Cortex-M (QEMU) on the float inputs `x`, and check them against
    the Python int8 runtime: the record of `python -m common firmware` (bit-exact, instructions per exit and per
    layer, flash and RAM). Needs the Arm toolchain and QEMU (the set-up installs them); TFLM builds once."""
    from common import paths
    from common.edge import board

    libs = board.libraries(cpu, kernels, profile=profile)
    return board.record(list(graphs), _rhos(rho, len(graphs) - 1), x, baseline, libs, cpu,
                        paths.cache_dir() / "firmware", costs, baseline_mflops)
