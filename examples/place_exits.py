"""Exits placed for a board on researchers' own networks (examples/own_networks.py), with the public API alone:
place (heads on the frozen backbone at every candidate layer, ranked by the Cortex-M4 instruction cut at the
budget) -> train the winner jointly -> export int8 -> certify its threshold on the int8 graphs, cheapest in
instructions -> build and run its firmware on the emulated board, against the placement's estimate.

    python examples/place_exits.py                       # the residual and the Sequential networks
    python examples/place_exits.py --networks residual --cost flops

Writes results/examples/placement.json: per network, the search's CPU time, the ranking's top rows, the
winner's certified threshold and its measured instruction cut beside the one the placement predicted. The data
are synthetic (own_networks.toy_data), so accuracies only show that each step ran.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed

from examples.own_networks import NETWORKS, toy_data


def place_one(name: str, cost: str, epochs: int, samples: int, budget: float) -> dict:
    """The whole road on one network; the record of each step."""
    import keras
    import tensorflow as tf

    from trecx import api
    from trecx.models.taps import pointwise

    keras.utils.set_random_seed(0)
    net = NETWORKS[name][0]()
    shape = tuple(net.input_shape[1:])
    x, y = toy_data(shape, 2 * samples)
    cal, test = toy_data(shape, samples, seed=1), toy_data(shape, samples, seed=2)
    net.compile("adam", "sparse_categorical_crossentropy")
    net.fit(x, y, epochs=epochs, verbose=0)  # the researcher's trained baseline
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(32)
    start = time.process_time()
    found = api.place_exits(net, train, cal, k=(1, 2), cost=cost, test=test, cost_x=x[:32], widths=("none", "1x"),
                            epochs=epochs, budgets=(budget,))
    rec: dict = {"network": name, "cost": cost, "cpu_minutes": found.cpu_seconds / 60,
                 "process_cpu_minutes": (time.process_time() - start) / 60, "cost_sources": found.costs,
                 "candidates": len(found.ranking)}
    best = found.best(cost, "validation", budget)
    rec["winner"] = best
    if best is None:
        return rec | {"note": "no candidate within the budget on the calibration split"}
    taps, widths = best["taps"].split(), best["widths"].split()
    model = api.attach_exit(net, taps if len(taps) > 1 else taps[0], pointwise=pointwise(net, taps, widths))
    api.train_exit(model, train, epochs=epochs)
    graphs = api.export_int8(model, x[:64])
    cert = api.calibrate_exit(graphs, *cal, max_drop=budget / 100, cost=cost, cost_x=x[:8])
    rec["certified_rho"] = cert.rho
    rec["certificate"] = cert.samples
    if cost != "flops":
        baseline = api.export_int8(net, x[:64])[0]
        board = api.firmware(graphs, cert, test[0][:32], baseline, *cost.split(":")[0].split("/"))
        rec["board"] = {"bit_exact": board["bit_exact"], "instruction_cut_pct": board["instruction_cut_pct"],
                        "flops_cut_pct": board["flops_cut_pct"], "exit_rate": board["exit_rate"],
                        "samples": board["samples"]}
        predicted = api.cost_vector(model, cost, x[:8])
        rec["predicted_vs_board_instructions"] = {
            "exits_minstructions": predicted,
            "board_per_segment_when_run": board["instructions"]["per_segment_when_run"]}
    return rec


@dataclass
class PlaceExitsConfig:
    """Options of this example."""

    networks: tuple[str, ...] = ("residual", "sequential_cnn")  # of own_networks.NETWORKS
    cost: str = "cortex-m4/cmsis_nn"  # the device (or flops)
    epochs: int = 4  # baseline, head and joint training epochs (toy data)
    samples: int = 192  # calibration and test samples (training: twice as many)
    budget: float = 5.0  # points below the baseline
    out: str = "results/examples/placement.json"  # relative to the repository


def run(cfg: PlaceExitsConfig) -> list[dict]:
    from trecx import files, paths
    from trecx.config import versions

    records = [place_one(n, cfg.cost, cfg.epochs, cfg.samples, cfg.budget) for n in cfg.networks]
    for r in records:
        print(r["network"], f"{r['cpu_minutes']:.1f} CPU-min", r.get("winner", {}) and r["winner"]["taps"],
              r.get("board", ""))
    files.write_json(paths.REPO / cfg.out, {"config": asdict(cfg), "versions": versions(), "networks": records,
                                            "data": "synthetic (own_networks.toy_data)"})
    return records


if __name__ == "__main__":
    from trecx.config import parse

    run(parse(PlaceExitsConfig, None, sys.argv[1:], description=__doc__))
