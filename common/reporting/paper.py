"""The paper's published numbers, for the "paper" columns beside ours (facts, cited, never our results).

Source: Ghanathe & Wilton, "T-RECX: Tiny-Resource Efficient Convolutional neural networks with
early-eXit", CF'23, Table 1 and Table 2, as transcribed in ../shared/papers/README.md ("The paper's
tables as numbers"). Accuracies in %, FLOPs in millions, parameters as counts.
"""

from __future__ import annotations

CITATION = "Ghanathe & Wilton, CF'23, Tables 1 and 2 (../shared/papers/README.md)"

# Table 1: the baseline, then T-RecX (test split; MFLOPs at the 1 / 2 / 3 % trade-offs).
TABLE1 = {
    "image_classification": {"baseline_accuracy": 87.2, "baseline_mflops": 25.28, "baseline_params": 78_700,
                             "trecx_mflops": (20.04, 18.43, 17.59), "trecx_params": 89_700,
                             "early_exit_accuracy": 73.3, "final_accuracy": 87.4, "flops_reduction_pct_1pt": 20.7},
    "keyword_spotting": {"baseline_accuracy": 92.2, "baseline_mflops": 5.54, "baseline_params": 24_900,
                         "trecx_mflops": (3.45, 3.31, 3.18), "trecx_params": 28_200,
                         "early_exit_accuracy": 88.5, "final_accuracy": 92.37, "flops_reduction_pct_1pt": 37.7},
    "visual_wake_words": {"baseline_accuracy": 85.81, "baseline_mflops": 15.69, "baseline_params": 221_700,
                          "trecx_mflops": (9.99, 8.97, 8.36), "trecx_params": 226_200,
                          "early_exit_accuracy": 80.46, "final_accuracy": 86.44, "flops_reduction_pct_1pt": 36.3},
}

# Table 2: parameters and the standalone accuracy of every exit in order, the final exit last.
TABLE2 = {
    "image_classification": {"trecx": (89_700, (73.4, 87.4)), "branchynet": (98_400, (72.4, 79.7, 85.7)),
                             "sdn": (94_000, (63.3, 75.0, 86.3))},
    "keyword_spotting": {"trecx": (28_200, (88.8, 92.3)), "branchynet": (62_600, (85.0, 87.6, 90.9)),
                         "sdn": (38_700, (63.7, 81.7, 89.0, 91.8))},
}
