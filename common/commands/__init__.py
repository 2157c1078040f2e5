"""The commands, one module each: a typed config, `run(cfg)` that does the work, and `main(argv)` that only
parses. Run one with `python -m common <command> [options]`; `python -m common` lists them. Commands
compose by calling each other's `run`; the library (every other package of `common`) never imports them.
Each task's `train.py` and `test.py` are thin fronts of `train` and `test` with the task fixed.
"""

# command -> what it does, in one line (the table `python -m common` prints)
COMMANDS = {
    "reproduce": "the main job: every task's test on pretrained/, model cards, targets, SUMMARY.md, README table",
    "train": "train one model variant of a task (also `python -m <task>.train`)",
    "test": "test a folder of models on a task's val/test splits into results/ (also `python -m <task>.test`)",
    "compare": "Fig 7, Table 2 and comparison.md against the paper and the prior methods, from results/",
    "model_card": "a task's MODEL_CARD.md from its results files",
    "calibration": "re-split and selection studies: how often each threshold rule breaks its budget on unseen data",
    "targets": "a task's accuracy and FLOPs targets against its results (targets.csv, bootstrap intervals)",
    "compute": "the CPU hours each shipped model took to train (training_cost.csv)",
    "deploy": "int8 graphs split at the exit, checked against Keras and between interpreters",
    "signals": "each exit signal's share of its model's limit (the perfect signal), certified cuts, the rule to ship",
    "field": "certified deployments under shift, and the label-free monitor that watches them (streams, board)",
    "certificates": "every deployment's certificate beside its test drop, and the certificate targets",
    "firmware": "the early-exit firmware on an emulated Cortex-M (TFLM, CMSIS-NN, QEMU): instructions, byte-exact",
    "export_sources": "C++ sources of a deployed (or any) early-exit model for your own TFLite Micro firmware",
    "benchmark": "batch-1 latency of the int8 early-exit runtime against the baseline (TFLM, LiteRT)",
    "promote": "ship the design of ours that beats trecx on validation as trecx_plus",
    "place": "where exits should go for a device: heads at every layer, ranked by instructions or FLOPs saved",
    "costmodel": "the instructions-per-MAC table of a device, fitted on measured layers, and its held-out error",
    "exit_study": "the early-exit width x position study: FLOPs and latency cuts as heat maps",
    "seeds": "train and test under several seeds; means, 95% intervals, paired ablation verdicts",
    "distill_search": "tabulate a finished joint-training (distillation) search from its runs' logs",
    "study_benchmark": "what running a study on Ray costs here: throughput against two runs by hand, start-up, memory",
    "study": "run a study (exit study, seeds, searches, the from-scratch wave) on Ray Tune, here or on a cluster",
}
