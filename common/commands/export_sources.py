"""C++ sources of an early-exit model for your own firmware (docs/deployment.md, "In your own firmware"):

    python -m common export_sources --task keyword_spotting --variant trecx_plus --out-dir my_fw/trecx
    python -m common export_sources --graphs-dir my_graphs --rhos 0.9,0.8 --out-dir my_fw/trecx

Writes trecx_model.h/.cc (the int8 segment graphs as arrays, each exit's threshold in int8 units, the hand-over
rules, the one tensor arena's size) and trecx_runner.h/.cc (the early-exit runner over TFLite Micro's
MicroInterpreter) into --out-dir, plus export.json saying what they hold: the thresholds, the rule that chose them
and its guarantee (a task's deployment: the deployed, by default certified, thresholds). They build against any
TFLM tree; `python -m common firmware` builds its benchmark firmware from exactly these files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from .. import files, paths, records, tasks
from ..config import parse
from ..edge import board
from ..edge.deployment import read_graphs, segments_of
from ..errors import ConfigError
from ..evaluation import signals


@dataclass
class ExportConfig:
    """Options of `python -m common export_sources`."""

    task: str = ""  # a deployed task model, or:
    graphs_dir: str = ""  # a folder of int8 segment graphs (segment_0.tflite ..., as api.save_graphs writes)
    rhos: str = ""  # --graphs-dir: the exits' thresholds, comma-separated (one for all, or one per exit; "" never)
    variant: str = tasks.DEPLOYED  # --task: results/<task>/deploy/<variant>/
    deploy_dir: str = ""  # "" = results/<task>/deploy/<variant>
    out_dir: str = ""  # where the sources go (required)
    arena_bytes: int = 0  # the one tensor arena (0 = every segment's apart, summed + margin; a firmware run says
    #                       how much it used: firmware_*.json arena_used_bytes)
    namespace: str = "trecx_model"  # C++ namespace of the generated model (two models in one firmware: two names)


def run(cfg: ExportConfig) -> dict:
    if bool(cfg.task) == bool(cfg.graphs_dir) or not cfg.out_dir:
        raise ConfigError("give --out-dir and either --task (a deployed model) or --graphs-dir (int8 segment graphs)")
    if cfg.task:
        src = Path(cfg.deploy_dir or paths.results_dir() / cfg.task / "deploy" / cfg.variant)
        deploy = records.read(src, cfg.variant)  # refused in one line when missing, older or not these graphs
        graphs = segments_of(read_graphs(src, cfg.variant, deploy["segments"], kinds=("int8",)))
        rhos, threshold, stamp = deploy["rhos"], deploy["threshold"], deploy.stamp()
        signal = signals.Signal.from_dict(deploy.get("signal"))
        note = (f"{cfg.task} {cfg.variant}, deployment {deploy.digest}, rule {threshold['rule']}. Guarantee: "
                f"{threshold.get('guarantee', 'none')}.")
    else:
        src = Path(cfg.graphs_dir)
        _, graphs = board.read_segments(src)
        rhos = board.parse_rhos(cfg.rhos)
        threshold, stamp, note = {"rule": "given by --rhos"}, {}, board.provenance(None)
        signal = None
    spec = board.segment_sources(graphs, rhos, Path(cfg.out_dir), cfg.arena_bytes or None, cfg.namespace, note,
                                 signal)
    rec = {**stamp, "source": paths.portable(src), "segments": len(graphs), "rhos": board.check_rhos(rhos, len(graphs)),
           "threshold": threshold, "signal": spec.signal, "arena_bytes": spec.arena_bytes,
           "handover_bytes": spec.handover_bytes,
           "classes": spec.classes, "input_bytes": spec.input_bytes, "ops": spec.ops,
           "segment_specs": spec.segments, "config": asdict(cfg)}
    files.write_json(Path(cfg.out_dir) / "export.json", rec)
    return rec


def main(argv: list[str] | None = None) -> dict:
    return run(parse(ExportConfig, None, argv, description=__doc__))
