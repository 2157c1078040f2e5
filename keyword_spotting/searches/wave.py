"""The DS-CNN models warm-started from the MLPerf reference that are neither seeds nor exit-study cells
(those are `--study seeds` and `--study exit_study`): the prior methods, the earlier layout and the two-exit
designs. `python -m common study --study wave --task keyword_spotting`."""

WAVE = [{"variant": v, "publish_as": v} for v in ("sdn", "branchynet", "eenets", "pteenet", "trecx_dwfirst",
                                                    "trecx2_ee1_ee3", "trecx2_ee1_ee2")]
