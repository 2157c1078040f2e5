"""The field targets (results/<task>/field/field_targets.csv, in the one targets row shape): false alarms in
distribution, protection under shift, and what the monitor costs on the board."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .. import records
from .targets import row

log = logging.getLogger("trecx.field")

MIN_STREAMS, MIN_LENGTH = 200, 10_000  # what the false-alarm target is measured over, at least
DETECTED = 0.9  # the share of shifted streams that must alarm within the shifted part
COST_TARGET = 5.0  # the audits' instructions, % of the baseline's, at most


def gather(field_dir: Path, deploy_dir: Path) -> tuple[list[dict], list[dict], dict]:
    """The shift rows, stream rows and board records of every deployment studied in `field_dir` (its
    <deployment>/field.json) whose deployment in `deploy_dir` is still the one it studied; a stale one is left out,
    in one log line."""
    shift, stream, boards = [], [], {}
    for path in sorted(Path(field_dir).glob("*/field.json")):
        rec, name = json.loads(path.read_text()), path.parent.name
        folder = Path(deploy_dir) / name
        if not (folder / records.DEPLOY).exists() or records.read(folder).digest != rec["deployment"]:
            log.warning("%s studied another deployment than %s holds now: left out (run python -m common field "
                        "--deployments %s again)", path, folder, name)
            continue
        shift += rec["shift"]
        stream += rec["streams"]
        if rec.get("board"):
            boards[name] = rec["board"]
    return shift, stream, boards


def allowance(r: dict, final_drop: float, disagreement: float) -> float | None:
    """What a monitored stream's drop over the shifted part may reach: the budget, or the full network's own drop
    under the shift where that is larger (the fallback cannot do better), plus
    - where the alarm came in at least DETECTED of the streams: what the detection delay costs, the 90th
      percentile delay's share of the shifted part times the early exit's own part of the unmonitored drop;
    - where it did not, and the early exit's disagreement under the shift stayed within the level (it kept to its
      certificate: the monitor has nothing to see): the level, in points;
    - else None: the monitor missed an early exit gone past its level."""
    base = max(r["budget_points"], final_drop)
    if r["detected_share"] >= DETECTED and r["delay_p90"] is not None:
        share = min(r["delay_p90"] / r["shifted_length"], 1.0)
        return base + share * max(r["drop_points_unmonitored"] - final_drop, 0.0)
    return base + 100 * r["level"] if disagreement <= r["level"] else None


def targets(task: str, shift_rows: list[dict], stream_rows: list[dict], boards: dict) -> list[dict]:
    out = []
    final = {(r["deployment"], r["shift"], r["severity"]): r["final_exit_drop_points"] for r in shift_rows}
    shifted_disagreement = {(r["deployment"], r["shift"], r["severity"]): r["disagreement"] for r in shift_rows}
    for r in stream_rows:
        name = r["deployment"]
        if r["shift"] == "none":
            enough = r["streams"] >= MIN_STREAMS and r["stream_length"] >= MIN_LENGTH
            lo, hi = r["false_alarm_rate_ci95"]
            out.append(row(f"{name}: in-distribution streams with any false alarm (share)", task,
                           r["false_alarm_rate"], r["alpha"], enough and r["false_alarm_rate"] <= r["alpha"],
                           f"{r['false_alarms']} of {r['streams']} streams of {r['stream_length']}; 95% interval "
                           f"[{lo:.3f}, {hi:.3f}]; level {r['level']}", deployment=name))
            continue
        if r["drop_points_unmonitored"] <= r["budget_points"]:
            continue
        key = (name, r["shift"], r["severity"])
        cap = allowance(r, final[key], shifted_disagreement[key])
        met = cap is not None and r["drop_points_monitored"] <= cap
        why = (f"alarm in {100 * r['detected_share']:.0f}% of streams, 90% within {r['delay_p90']:.0f} samples"
               if r["delay_p90"] is not None else
               f"alarm in {100 * r['detected_share']:.0f}% of streams within {r['shifted_length']} samples")
        out.append(row(f"{name} under {r['shift']} {r['severity']}: monitored drop over the shifted part (points)",
                       task, round(r["drop_points_monitored"], 2), None if cap is None else round(cap, 2), met,
                       f"{why}; unmonitored {r['drop_points_unmonitored']:.2f}, the full network's own "
                       f"{final[key]:.2f}; disagreement {shifted_disagreement[key]:.3f} against the level "
                       f"{r['level']}", deployment=name))
    ind = {r["deployment"]: r for r in stream_rows if r["shift"] == "none"}
    for name, b in boards.items():
        if name not in ind or not b.get("baseline_instructions"):
            continue
        per_audit = b["audit_instructions_per_audited_early_exit"] or 0.0
        added = ind[name]["audited_early_share"] * per_audit + b["monitor_instructions_per_sample"]
        pct = 100 * added / b["baseline_instructions"]
        out.append(row(f"{name}: what the monitor adds in distribution at 1 in {1 / ind[name]['audit']:.0f}, % of the "
                       f"baseline's instructions ({b['cpu']})", task, round(pct, 3), COST_TARGET, pct <= COST_TARGET,
                       f"{ind[name]['audited_early_share']:.4f} audited early exits per sample x {per_audit:.0f} "
                       f"instructions + {b['monitor_instructions_per_sample']:.0f} of the monitor's own per sample; "
                       f"board stream bit-exact: {b['bit_exact']}", deployment=name))
        alarm = (f"the alarm at sample {b['alarm_sample_host']}" if b["alarm_sample_host"] >= 0
                 else "no alarm in this stream on either")
        out.append(row(f"{name}: the monitor on the board as on the host (every sample's status, audit and statistic "
                       "to the bit; the alarm's sample)", task, b["alarm_sample_board"], b["alarm_sample_host"],
                       b["bit_exact"] and b["alarm_sample_board"] == b["alarm_sample_host"],
                       f"{b['samples']} samples, {b['stream']}; {alarm}", deployment=name))
    return out
