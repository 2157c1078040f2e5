"""Train and test on the five seeded VWW splits, then report the mean and a 95% interval:

    python -m visual_wake_words.seeds

The test split holds 200 images, so one split's numbers move by a few points; this gives their
spread. Shorthand for `python -m common seeds --task visual_wake_words --seeds 0 1 2 3 4 --vary-split
true --publish-seed 0` (any of its options may follow)."""

from __future__ import annotations

from trecx.commands import seeds
from trecx.config import parse

DEFAULTS = seeds.SeedsConfig(task="visual_wake_words", seeds=(0, 1, 2, 3, 4), vary_split=True, publish_seed=0,
                             variants=("baseline", "trecx", "trecx_noev", "trecx_notransfer", "eefmaps_concat"))


def main(argv: list[str] | None = None) -> list[dict]:
    return seeds.run(parse(seeds.SeedsConfig, {"default": DEFAULTS}, argv, description=__doc__,
                           fixed={"task": DEFAULTS.task}))


if __name__ == "__main__":
    from trecx import cli

    cli.run(main)
