"""The MobileNetV1-0.25 models that are neither seeds nor exit-study cells (`--study seeds`, `--study
exit_study`): this project's earlier layout. `python -m common study --study wave --task visual_wake_words`."""

WAVE = [{"variant": "trecx_dwfirst", "publish_as": "trecx_dwfirst"}]
