"""The field monitor (evaluation.monitor), its runtime, its sources, the shifts and the field study's streams."""

from __future__ import annotations

import numpy as np
import pytest

from common.data import shifts
from common.evaluation.monitor import Monitor, Watch, certified_level, xorshift32
from common.studies import streams
from common.studies.field import Deployed, Outcomes


def bernoulli_stream(watch: Watch, p: float, samples: int, rng) -> int:
    """Feed `samples` samples whose audits disagree with probability p; the alarm's sample or -1."""
    for _ in range(samples):
        if watch.draw() and watch.observe(True, bool(rng.random() < p)):
            return watch.state.alarm_at
    return -1


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(ValueError, match="needs a certified level"):
        Monitor().checked()
    for bad, match in (({"audit": 0.0}, "audit fraction"), ({"audit": 1.5}, "audit fraction"),
                       ({"level": 0.0}, "level must lie"), ({"level": 1.0}, "level must lie"),
                       ({"alpha": 1.0}, "alpha"), ({"seed": 0}, "seed"), ({"bets": (1.2,)}, "bets")):
        with pytest.raises(ValueError, match=match):
            Monitor(**({"level": 0.05} | bad)).checked()
    assert Monitor(audit=1.0).checked(0.1).level == 0.1  # a level filled in where none was given


def test_the_statistic_is_a_martingale_at_the_level():
    """E[M_{t+1} | past] = M_t when the audits disagree at exactly the level: each branch computed from the same
    state (the weights of the start times sum to one, so the starts not yet made make up the rest)."""
    spec = Monitor(level=0.07, audit=1.0)
    rng = np.random.default_rng(0)
    w = Watch(spec)
    for _ in range(40):
        w.draw()
        w.observe(True, bool(rng.random() < 0.07))
        state = (list(w.state.wealth), w.state.audits, w.state.disagreements, w.state.statistic)
        branches = []
        for d in (True, False):
            w.state.wealth, w.state.audits, w.state.disagreements = list(state[0]), state[1], state[2]
            w.observe(True, d)
            branches.append(w.state.statistic)
        w.state.wealth, w.state.audits, w.state.disagreements, w.state.statistic = list(state[0]), *state[1:]
        assert 0.07 * branches[0] + 0.93 * branches[1] == pytest.approx(state[3], rel=1e-12)


def test_false_alarms_stay_under_alpha_at_the_level_and_a_shift_is_caught():
    """Ville: over whole streams at the worst in-distribution rate (the level itself), at most alpha raise any
    alarm; at three times the level, every stream alarms."""
    rng = np.random.default_rng(1)
    alarms = [bernoulli_stream(Watch(Monitor(level=0.1, alpha=0.1, audit=1.0, seed=s + 1)), 0.1, 1500, rng)
              for s in range(200)]
    assert np.mean([a >= 0 for a in alarms]) <= 0.1 + 0.05  # 0.1 in expectation at most; 200 streams' noise
    caught = [bernoulli_stream(Watch(Monitor(level=0.1, alpha=0.1, audit=1.0, seed=s + 1)), 0.3, 1500, rng)
              for s in range(20)]
    assert all(0 <= a < 1500 for a in caught)


def test_audits_are_a_seeded_fraction_of_the_samples_and_stop_at_the_alarm():
    w = Watch(Monitor(level=0.05, audit=1 / 16, seed=7))
    drawn = [w.draw() for _ in range(32_000)]
    assert abs(np.mean(drawn) - 1 / 16) < 0.005
    again = Watch(Monitor(level=0.05, audit=1 / 16, seed=7))
    assert [again.draw() for _ in range(32_000)] == drawn  # the same seed, the same audits (host and board)
    assert xorshift32(1) == 270369  # the C++ runner's first draw from seed 1
    w = Watch(Monitor(level=0.01, audit=1.0))
    assert bernoulli_stream(w, 1.0, 100, np.random.default_rng(0)) >= 0
    assert not any(w.draw() for _ in range(50)) and w.state.samples == w.state.alarm_at + 51


def test_the_level_is_the_smallest_certified_at_the_deployed_threshold():
    rng = np.random.default_rng(0)
    n, classes = 2000, 5
    final = np.eye(classes)[rng.integers(0, classes, n)]
    conf = rng.uniform(0.3, 1.0, n)
    wrong = (conf < 0.6) & (rng.random(n) < 0.5)  # the unconfident early exit disagrees half the time
    early = np.where(wrong[:, None], np.roll(final, 1, axis=1), final) * conf[:, None]
    early += (1 - conf[:, None]) * (1 - early.astype(bool)) / (classes - 1)
    probs = [early, final]
    high = certified_level(probs, [1.0, 2.0], 0.9)
    low = certified_level(probs, [1.0, 2.0], 0.4)
    assert high is not None and low is not None and high < low
    with pytest.raises(ValueError, match="not on the certificate's threshold grid"):
        certified_level(probs, [1.0, 2.0], 0.905)


def test_a_stream_falls_back_to_the_full_network_after_the_alarm():
    n = 400
    o = Outcomes(exit=np.zeros(n, int), classes=np.stack([np.zeros(n, int), np.ones(n, int)], axis=1),
                 baseline=np.ones(n, int), labels=np.ones(n, int))  # the early exit always disagrees and errs
    d = Deployed("x", [], b"", [0.5], 1.0, None, "", "", [1.0, 3.0], 2.5)
    r = streams.run(o, np.arange(n), d, Monitor(level=0.05, audit=0.5))
    assert 0 <= r.alarm < 100
    assert (r.predicted[r.alarm + 1:] == 1).all() and (r.predicted[: r.alarm + 1] == 0).all()
    assert (r.cost[r.alarm + 1:] == 3.0).all() and r.cost[: r.alarm + 1].max() == 3.0  # the audits ran it all


@pytest.mark.parametrize("kind", ["gaussian_noise", "blur", "brightness", "contrast", "jpeg", "low_light"])
def test_every_image_shift_moves_the_pixels_more_with_severity_and_is_seeded(kind):
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    moved = [np.abs(shifts.apply(kind, x, s, seed=1) - x).mean() for s in shifts.SEVERITIES]
    assert 0 < moved[0] < moved[-1]
    assert (shifts.apply(kind, x, 2, seed=1) == shifts.apply(kind, x, 2, seed=1)).all()
    assert shifts.apply(kind, x, 3).dtype == x.dtype and shifts.apply(kind, x, 3).shape == x.shape


@pytest.mark.parametrize("kind", ["background_noise", "gain", "time_shift", "muffled"])
def test_every_audio_shift_stays_int16_and_moves_the_clip(kind):
    rng = np.random.default_rng(0)
    wav = (rng.normal(0, 2000, (2, 16000))).astype(np.int16)
    background = [rng.normal(0, 0.1, 40000).astype(np.float32)]
    out = shifts.apply(kind, wav, 2, seed=0, background=background)
    assert out.dtype == np.int16 and out.shape == wav.shape and (out != wav).any()


def test_an_unknown_shift_is_refused():
    with pytest.raises(ValueError, match="shift must be one of"):
        shifts.apply("fog", np.zeros((1, 4, 4, 3)), 1)
    with pytest.raises(ValueError, match="severity"):
        shifts.apply("blur", np.zeros((1, 4, 4, 3)), 4)


def test_protection_is_judged_against_the_budget_the_full_network_and_the_delay():
    from common.reporting.field import targets

    common = {"deployment": "d", "budget_points": 5.0, "level": 0.05, "alpha": 0.05, "audit": 1 / 16}
    shift = [common | {"shift": k, "severity": 3, "final_exit_drop_points": f, "disagreement": g}
             for k, f, g in (("caught", 2.0, 0.3), ("own", 12.0, 0.02), ("missed", 2.0, 0.08))]
    stream = [common | {"shift": "none", "severity": 0, "false_alarms": 3, "streams": 200, "stream_length": 10_000,
                        "false_alarm_rate": 0.015, "false_alarm_rate_ci95": [0.003, 0.04]}]
    stream += [common | {"shift": k, "severity": 3, "shifted_length": 5000, "detected_share": share,
                         "delay_p90": delay, "drop_points_unmonitored": off, "drop_points_monitored": on}
               for k, share, delay, off, on in (("caught", 1.0, 1000.0, 20.0, 8.0), ("own", 0.0, None, 13.0, 13.0),
                                                ("missed", 0.1, None, 9.0, 9.0))]
    rows = {r["target"].split(":")[0]: r for r in targets("t", shift, stream, {})}
    assert rows["d"]["met"]  # 3 false alarms in 200 streams
    caught = rows["d under caught 3"]
    assert caught["met"] and caught["required"] == pytest.approx(5.0 + 0.2 * 18.0)  # the delay's share of 18 points
    assert rows["d under own 3"]["met"] and rows["d under own 3"]["required"] == pytest.approx(12.0 + 5.0)
    assert not rows["d under missed 3"]["met"] and rows["d under missed 3"]["required"] is None
