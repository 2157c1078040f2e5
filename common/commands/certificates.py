"""Every shipped deployment's certificate beside its test drop, and the certificate targets (a benchmark, not a
test): python -m common certificates

Reads results/<task>/deploy/*/deploy.json (and each firmware record on the Cortex-M4 with CMSIS-NN) through the
checked readers and writes results/certificates.csv and results/certificate_targets.csv (`reporting.certificates`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..config import parse
from ..reporting import certificates

log = logging.getLogger("trecx.certificates")


@dataclass
class CertificatesConfig:
    """Options of `python -m common certificates`."""

    results_dir: str = ""  # "" = results/


def run(cfg: CertificatesConfig) -> list[dict]:
    results = Path(cfg.results_dir or paths.results_dir())
    table = certificates.write(results)
    for r in table:
        log.info("%s %s: %s at %s pt, test drop %.2f [%.2f, %.2f]%s", r["task"], r["folder"],
                 "certified" if r["certified"] else "not certified", r["budget_points"], r["test_drop_points"],
                 r["test_drop_ci95_low"], r["test_drop_ci95_high"], "" if r["within_budget"] else " OVER the budget")
    return table


def main(argv: list[str] | None = None) -> list[dict]:
    return run(parse(CertificatesConfig, None, argv, description=__doc__))
