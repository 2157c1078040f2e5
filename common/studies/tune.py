"""Studies as Ray Tune experiments: many independent trainings, side by side on this machine or spread over
a Ray cluster (the `study` command defines each study's trials; docs/studies.md).

A study is a grid of trials, each a dict naming one training (task, preset, variant, config fields). Ray
Tune runs a given trainable on each, reserving `threads` CPUs per trial, and keeps the experiment's state in
`<storage>/<study>/`. Started again, the same study carries on: finished trials are kept as they are and
unfinished ones start again, where the training resumes from its own run folder's backup (its last finished
epoch). With no address Ray starts on this machine for the study and stops with it; `address` (or
$RAY_ADDRESS) joins a running cluster, whose workers then need the storage and the runs folder on a shared
path. Ray's dashboard and usage statistics stay off unless asked for.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import ConfigError, TrecxError

log = logging.getLogger("trecx.study")
ROOT = Path(__file__).resolve().parents[2]  # the project: on the workers' import path
TRIALS_FILE = "trials.json"  # the study's own record of its grid, checked when it is started again
# shipped to cluster workers as the working directory; the rest stays here
MAX_FAILURES = 3  # times a trial is started again after its node or process died (each resumes its run folder)
UPLOAD_EXCLUDES = [".git", ".venv", ".cache", "runs", "results", "pretrained/*/seeds", "**/__pycache__"]


@dataclass
class Where:
    """Where and how wide a study runs."""

    address: str = ""  # a Ray cluster to join ("" = $RAY_ADDRESS, or a Ray started here for the study)
    storage: str = ""  # the experiments' folder (on a cluster: a path every node shares); "" = <runs>/studies
    threads: int = 1  # CPU threads of each trial, and the Ray CPUs it reserves
    max_concurrent: int = 0  # trials side by side at most (0: as many as the CPUs allow)
    dashboard: bool = False  # Ray's dashboard (usage statistics stay off unless RAY_USAGE_STATS_ENABLED=1)


def _dirname(trial) -> str:
    """A trial's folder: its number and label, no characters a shell would trip on."""
    label = trial_label(trial.config["trial"]).replace("/", "_").replace("=", "")
    return f"{trial.trial_id.rsplit('_', 1)[-1]}_{label}"[:120]


def storage_dir(where: Where) -> Path:
    return Path(where.storage or paths.runs_dir() / "studies").resolve()


def _address(where: Where) -> str | None:
    return where.address or os.environ.get("RAY_ADDRESS") or None


def auth(where: Where) -> None:
    """Join token-authenticated clusters (what `ray start --head` makes from Ray 2.59 on): joining one with no
    RAY_AUTH_MODE set, token mode whenever a token is at hand (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or the file
    `ray start` writes, ~/.ray/auth_token). A token-mode driver also joins a cluster without authentication. Ray
    reads the mode when it is imported, so this comes before any import of ray."""
    if "RAY_AUTH_MODE" in os.environ or not _address(where):
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH") or \
            (Path.home() / ".ray" / "auth_token").exists():
        os.environ["RAY_AUTH_MODE"] = "token"


def trial_env() -> dict[str, str]:
    """What every trial gets, on whichever node: the data, reference, cache, runs and results folders as
    absolute paths (a relative or default one would resolve inside Ray's copy of the project there)."""
    folders = {"TRECX_DATA": paths.data_dir(), "TRECX_REFERENCE": paths.reference_dir(),
               "TRECX_CACHE": paths.cache_dir(), "TRECX_RUNS": paths.runs_dir(), "TRECX_RESULTS": paths.results_dir()}
    return {"RAY_CHDIR_TO_TRIAL_DIR": "0"} | {k: str(Path(v).resolve()) for k, v in folders.items()}


def start(where: Where) -> bool:
    """Connect to the cluster at `where.address` (or $RAY_ADDRESS), else start Ray here. Returns whether a
    cluster was joined."""
    auth(where)
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # save the experiment state often: a kill loses little
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # trials resolve paths as the command does
    address = _address(where)
    env_vars = trial_env()
    if address:  # remote workers get the project as their working directory
        runtime_env = {"working_dir": str(ROOT), "excludes": UPLOAD_EXCLUDES, "env_vars": env_vars}
    else:
        runtime_env = {"env_vars": env_vars | {"PYTHONPATH": str(ROOT)}}
    if ray.is_initialized():
        return address is not None
    try:
        ray.init(address=address, include_dashboard=where.dashboard, runtime_env=runtime_env, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=True)
    except ConnectionError as e:
        raise ConfigError(f"cannot join the Ray cluster at {address} ({str(e).splitlines()[0]}): check the address; "
                          "a token-authenticated cluster needs its token here (`ray get-auth-token` on the head, "
                          "then RAY_AUTH_TOKEN=... and RAY_AUTH_MODE=token)") from None
    return address is not None


def check_nodes(needed: list[Path]) -> None:
    """Before any trial starts: a one-line ConfigError naming the first node of the cluster that lacks one of
    the `needed` paths (its datasets, say), which every trial there would otherwise fail on minutes later."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def missing(wanted: list[str]) -> list[str]:
        return [p for p in wanted if not os.path.exists(p)]

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probes = [missing.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
        [str(p) for p in needed]) for n in nodes]
    for node, lacks in zip(nodes, ray.get(probes, timeout=300), strict=True):
        where = f"{node.get('NodeManagerAddress')} ({node['NodeID'][:8]})"
        log.info("node %s has %s", where, "everything" if not lacks else f"no {lacks[0]}")
        if lacks:
            raise ConfigError(f"node {where} of the cluster has no {lacks[0]}: "
                              "every node needs the data at the same absolute path (set TRECX_DATA to a copy each "
                              "one has, or a shared folder)")


def _progress(total: int):
    """A driver callback logging each trial's start and end, and how many of `total` are finished."""
    from ray import tune

    class Progress(tune.Callback):
        done = 0

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            log.info("started %s", trial_label(trial.config["trial"]))

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            Progress.done += 1
            log.info("finished %s (%d of %d this run)", trial_label(trial.config["trial"]), Progress.done, total)

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            log.error("failed %s: see %s", trial_label(trial.config["trial"]), trial.local_path)

    return Progress()


def trial_label(t: dict) -> str:
    """A short readable name of a trial: `<variant>/<preset>[/<field>=<value>...]`."""
    fields = "/".join(f"{k}={v}" for k, v in sorted(t.get("fields", {}).items()) if k != "out_dir")
    return "/".join(x for x in (t["variant"], t.get("preset", "default"), fields) if x)


def _check_same(path: Path, trials: list[dict]) -> None:
    """A study started again must have the grid it started with (its state holds that grid's trials)."""
    saved = path / TRIALS_FILE
    if saved.exists() and json.loads(saved.read_text()) != trials:
        raise ConfigError(f"study {path} was started with other trials: pass --restart true to start it anew "
                          f"(its finished run folders are reused), or --storage to keep both")


def _each(fn: Callable[[dict, dict], None]):
    """A driver callback calling fn(trial dict, what it reported) as each trial finishes."""
    from ray import tune

    class Each(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            fn(trial.config["trial"], trial.last_result or {})

    return Each()


def run(name: str, trials: list[dict], trainable: Callable[[dict], None], where: Where,
        restart: bool = False, extra: dict | None = None, on_complete: Callable[[dict, dict], None] | None = None,
        needed: list[Path] | None = None) -> list[dict]:
    """Run the study `name` (one trial per dict of `trials`, handed to `trainable` as config["trial"], beside
    the fixed entries of `extra`), or carry it on; returns, per trial in order, {"trial": its dict, **what the
    trainable reported}. `on_complete(trial, reported)`: called on the driver as each trial finishes (e.g. to
    publish it), a plain function, so that callers never import Ray before `auth` has set its mode;
    `needed`: paths every node must have (checked on a cluster before any trial starts). A trial whose node
    dies is started again elsewhere (up to MAX_FAILURES times), resuming from its run folder."""

    auth(where)
    from ray import tune

    path = storage_dir(where) / name
    if restart and path.exists():
        shutil.rmtree(path)
    _check_same(path, trials)
    if start(where) and needed:
        check_nodes(needed)
    fn = tune.with_resources(trainable, {"cpu": where.threads})
    space = {"trial": tune.grid_search(trials), **(extra or {})}
    if tune.Tuner.can_restore(str(path)):
        log.info("carrying on %s: finished trials are kept, unfinished ones resume from their run folders", path)
        tuner = tune.Tuner.restore(str(path), trainable=fn, resume_unfinished=True, restart_errored=True,
                                   param_space=space)
    else:
        path.mkdir(parents=True, exist_ok=True)
        (path / TRIALS_FILE).write_text(json.dumps(trials, indent=1))
        tuner = tune.Tuner(fn, param_space=space,
                           tune_config=tune.TuneConfig(max_concurrent_trials=where.max_concurrent or None,
                                                       trial_dirname_creator=_dirname),
                           run_config=tune.RunConfig(name=name, storage_path=str(path.parent), verbose=0,
                                                     failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                                                     callbacks=[_progress(len(trials)),
                                                                *([_each(on_complete)] if on_complete else [])]))
        (path / TRIALS_FILE).write_text(json.dumps(trials, indent=1))  # Tune may have made the folder anew
    grid = tuner.fit()
    failed = [r for r in grid if r.error]
    if failed:
        raise TrecxError(f"{len(failed)} of {len(trials)} trials of study '{name}' failed (first: "
                         f"{str(failed[0].error).splitlines()[0][:200]}); logs under {path}; run the same command "
                         "again to retry them")
    by_trial = {json.dumps(r.config["trial"], sort_keys=True): r.metrics for r in grid}
    return [{"trial": t, **by_trial.get(json.dumps(t, sort_keys=True), {})} for t in trials]
