"""The DS-CNN joint-training (distillation) search (finished): `keyword_spotting/queues/distill_search.txt`
trains it and `python -m common distill_search --task keyword_spotting` tabulates it
(results/keyword_spotting/distill_search.csv); labels alone won, so the `default` preset of config.py
trains without a teacher."""

from __future__ import annotations

from dataclasses import replace

from ..config import REFERENCE, Config

# Joint training distilled from the frozen MLPerf reference, settings chosen on
# validation (`python -m common distill_search` tabulates them). Every one keeps an epoch of
# the joint phase (keep_joint), so the backbone has moved (log.csv: backbone_change).
_JOINT = Config()
_DISTILL = replace(_JOINT, teacher=REFERENCE)
DISTILL_SEARCH = {
    "joint_plain": _JOINT,  # labels only: what joint training does without a teacher
    "distill_a0.5_t4": replace(_DISTILL, distill_weight=0.5, temperature=4.0),
    "distill_a0.9_t4": replace(_DISTILL, distill_weight=0.9, temperature=4.0),
    "distill_a0.5_t4_lr1e-4": replace(_DISTILL, distill_weight=0.5, temperature=4.0, lr=1e-4),
    "distill_a0.9_t2_lr1e-4": replace(_DISTILL, distill_weight=0.9, temperature=2.0, lr=1e-4),
    "distill_a0.9_t4_lr1e-4": replace(_DISTILL, distill_weight=0.9, temperature=4.0, lr=1e-4),
    "joint_selfdistill": replace(_JOINT, self_distill=0.5),  # the final exit (no gradient) teaches the EE
}
