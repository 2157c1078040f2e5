"""A T-RecX exit on a network this project does not build: keras.applications' MobileNet (alpha 0.25,
weights=None) on the local CIFAR-10, through the whole public API (common.api, docs/api.md):
attach -> train jointly -> export int8 split at the exit -> certify rho on the int8 graphs -> run -> C++ sources
-> the early-exit firmware on an emulated Cortex-M4 (TFLM + CMSIS-NN in QEMU, bit-exact with the runtime).

    python examples/attach_keras_applications.py                 # about 20 minutes on 2 CPU cores (40 epochs)
    python examples/attach_keras_applications.py --epochs 1 --train-images 2000   # a quick look

Writes results/examples/attach_keras_applications.json: accuracy of both exits on the test split, the rho
certified on the int8 validation outputs, the int8 runtime's accuracy, exit rate and FLOPs cut against the full
network, and the firmware's record (instructions, cut, RAM, bit-exact); the C++ sources beside it, in
attach_keras_applications_sources/ (generated, not kept by git).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed

import numpy as np

from trecx import api, cli, files, paths
from trecx.config import parse, versions
from trecx.data.images import load_cifar10
from trecx.data.pipelines import eval_dataset, image_train_dataset


@dataclass
class ExampleConfig:
    """Options of this example."""

    data_dir: str = ""  # datasets root; "" = $TRECX_DATA or ../shared/datasets
    after: str = "conv_pw_3_relu"  # the layer the exit follows (a 8x8x64 map of MobileNet-0.25 on 32x32 input)
    epochs: int = 40  # joint training epochs (at 12 the final exit still trails the early one)
    train_images: int = 0  # 0 = the whole training split
    max_drop: float = 1.0  # points below the full network's accuracy the certified rho may lose
    delta: float = 0.05  # the allowed probability of losing more
    runtime_samples: int = 500  # test images run through the int8 early-exit runtime
    mcu_samples: int = 100  # test images run on the emulated Cortex-M4 (0: no firmware)
    out: str = "results/examples/attach_keras_applications.json"  # relative to the repository


def run(cfg: ExampleConfig) -> dict:
    import keras

    start = time.time()
    keras.utils.set_random_seed(0)
    data = load_cifar10(cfg.data_dir or None, seed=0)
    xtr, ytr = data.x["train"], data.y["train"]
    if cfg.train_images:  # a seeded random subset (the split is ordered by class)
        keep = np.random.default_rng(0).permutation(len(ytr))[: cfg.train_images]
        xtr, ytr = xtr[keep], ytr[keep]
    base = keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=10)
    model = api.attach_exit(base, cfg.after)  # 1. the paper's exit block and the early view
    # pixels scaled to 0..1 (a network of your own may take them as they are)
    train = image_train_dataset(xtr, ytr, 128, 0, flip=True, pad_crop=4).map(lambda x, y: (x / 255, y))
    x_val, y_val = (data.x["val"] / 255).astype("float32"), data.y["val"]
    val = eval_dataset(x_val, y_val)
    api.train_exit(model, train, val, epochs=cfg.epochs, w_ee=0.5,  # 2. joint training, EE->EV weight copy
                   optimizer=keras.optimizers.Adam(2e-3))
    x_test, y_test = (data.x["test"] / 255).astype("float32"), data.y["test"]
    probs = api.outputs(model, x_test)
    full_right = probs[-1].argmax(1) == y_test
    x_cal = (data.x["train"][:200] / 255).astype("float32")
    graphs = api.export_int8(model, x_cal)  # 3. int8 graphs split at the exit
    cal = api.calibrate_exit(graphs, x_val, y_val, max_drop=cfg.max_drop / 100, delta=cfg.delta)  # 4. int8 rho
    runtime = api.runtime(graphs, cal)  # 5. the early-exit runtime, at the certified threshold
    pick = np.random.default_rng(0).permutation(len(y_test))[: cfg.runtime_samples]
    preds = [runtime(x_test[i]) for i in pick]
    costs = api.exit_costs(model)
    exited = np.array([p.exit == "early_exit" for p in preds])
    mflops = np.where(exited, costs["early_exit"]["mflops"], costs["final"]["mflops"]).mean()
    rec = {"config": asdict(cfg), "network": "keras.applications.MobileNet(alpha=0.25, weights=None), 32x32 input",
           "params": model.count_params(), "mflops": {k: v["mflops"] for k, v in costs.items()},
           "test_images": len(y_test), "data": data.info | {"source": paths.portable(data.info["source"],
                                                                                     paths.data_dir())},
           "test_accuracy": {"early_exit": float((probs[0].argmax(1) == y_test).mean()),
                             "final": float(full_right.mean())},
           "certified_rho": cal.rho, "calibrated_on": f"{len(y_val)} validation images, int8 graph outputs",
           "int8_runtime": {"samples": len(pick), "exit_rate": float(exited.mean()),
                            "accuracy": float(np.mean([p.label == y_test[i]
                                                       for p, i in zip(preds, pick, strict=True)])),
                            "keras_full_network_accuracy_same_samples": float(full_right[pick].mean()),
                            "flops_cut_vs_full_network_pct": 100 * (1 - mflops / costs["final"]["mflops"])},
           "minutes": round((time.time() - start) / 60, 1), "versions": versions()}
    out = paths.REPO / cfg.out
    api.export_sources(graphs, cal, out.with_name(out.stem + "_sources"))  # 6. C++ for a firmware of your own
    if cfg.mcu_samples:  # 7. on the board, against the network without its exit (same int8 conversion)
        baseline = api.export_int8(base, x_cal)[0]  # the backbone with its own classifier: what the exit saves on
        fw = api.firmware(graphs, cal, x_test[pick[: cfg.mcu_samples]], baseline)  # FLOPs: the graphs' MACs
        rec["firmware_cortex_m4"] = {key: fw[key] for key in (
            "samples", "bit_exact", "exit_rate", "instructions", "instruction_cut_pct", "flops_cut_pct", "flops_source",
            "flash_bytes", "ram_bytes", "baseline_ram_bytes", "handover_bytes", "ram_within_baseline_plus_handover")}
        rec["minutes"] = round((time.time() - start) / 60, 1)
    files.write_json(out, rec)
    return rec


def main(argv: list[str] | None = None) -> dict:
    return run(parse(ExampleConfig, None, argv, description=__doc__))


if __name__ == "__main__":
    cli.run(main)
