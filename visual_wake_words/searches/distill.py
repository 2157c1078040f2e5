"""The MobileNetV1 joint-training (distillation) search (finished): `visual_wake_words/queues/distill_search.txt`
trains it and `python -m common distill_search --task visual_wake_words` tabulates it
(results/visual_wake_words/distill_search.csv); labels alone won, so the `default` preset of config.py
trains without a teacher."""

from __future__ import annotations

from dataclasses import replace

from ..config import REFERENCE, Config

# Joint training distilled from the frozen MLPerf reference, settings chosen on
# validation (`python -m common distill_search --task visual_wake_words`). Every one keeps an epoch of
# the joint phase (keep_joint): 20 head-only epochs, then 30 joint ones with the teacher.
_JOINT = Config()
_DISTILL = replace(_JOINT, teacher=REFERENCE, head_epochs=20, lr=1e-4)
DISTILL_SEARCH = {
    "joint_plain": _JOINT,  # labels only, the shipped recipe's 10 joint epochs at 2e-5
    "distill_a0.5_t4": replace(_DISTILL, distill_weight=0.5, temperature=4.0),
    "distill_a0.9_t4": replace(_DISTILL, distill_weight=0.9, temperature=4.0),
    "distill_a0.9_t4_lr3e-5": replace(_DISTILL, distill_weight=0.9, temperature=4.0, lr=3e-5),
}
