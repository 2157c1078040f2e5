"""The from-scratch wave: every ResNet-8 model this project ships, trained with the default recipe (the
same epochs and seed), the ones the targets need first. `python -m common study --study wave --task
image_classification` runs it on Ray Tune, two single-thread trials side by side on 2 cores; each entry is
a `study.trial` of this task (variant, and optionally preset, publish_as and config fields)."""

_SEED_RUNS = [{"variant": v, "seed": s, "publish_as": f"seeds/seed{s}/{v}"} for s in (1, 2)
              for v in ("baseline", "trecx")]

WAVE = [
    {"variant": "baseline", "publish_as": "baseline"},
    {"variant": "trecx", "publish_as": "trecx"},
    {"variant": "trecx_noev", "publish_as": "trecx_noev"},
    {"variant": "sdn", "publish_as": "sdn"},
    {"variant": "branchynet", "publish_as": "branchynet"},
    # trecx_plus candidates (trecx_sd, trecx_dwfirst): `python -m common promote --task image_classification
    # --candidates trecx_sd trecx_dwfirst` ships the one whose FLOPs cut is highest on validation
    {"variant": "trecx", "preset": "self_distill", "publish_as": "trecx_sd"},
    # PTEENet trains its exit heads on the frozen shipped baseline (a wave that retrains the baseline: run the
    # study again once the baseline is published, after `--restart true`, so that PTEENet starts from it)
    {"variant": "pteenet", "publish_as": "pteenet", "epochs": 30,
     "init_from": "pretrained/image_classification/baseline.keras"},
    {"variant": "eenets", "publish_as": "eenets"},
    {"variant": "pool_ee", "publish_as": "pool_ee"},
    {"variant": "trecx_dwfirst", "publish_as": "trecx_dwfirst"},
    {"variant": "trecx2_ee1_ee2", "publish_as": "trecx2_ee1_ee2"},  # two exits; promote --ship-as trecx2
    *_SEED_RUNS,  # seed noise of the trecx-vs-baseline gap, kept in pretrained/image_classification/seeds/
]
