from __future__ import annotations

import numpy as np
import pytest

from engine.calibration import (
    ReliabilityBin,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_table,
)


def test_ece_hand_computed() -> None:
    conf = np.array([0.95, 0.95, 0.15])
    correct = np.array([True, False, False])
    # bin [0.9, 1): acc 0.5 vs conf 0.95 on 2 of 3; bin [0.1, 0.2): acc 0 vs 0.15 on 1 of 3
    assert expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(2 / 3 * 0.45 + 1 / 3 * 0.15)


def test_ece_of_calibrated_data_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 200_000)
    correct = rng.random(conf.size) < conf
    assert expected_calibration_error(conf, correct) < 0.01


def test_ece_of_overconfident_data_is_large() -> None:
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.7, 1.0, 100_000)
    correct = rng.random(conf.size) < conf - 0.3
    assert expected_calibration_error(conf, correct) == pytest.approx(0.3, abs=0.02)


def test_ece_edges() -> None:
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1, 0])) == 0.0
    with pytest.raises(ValueError):
        expected_calibration_error(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        expected_calibration_error(np.array([1.2]), np.array([1]))
    with pytest.raises(ValueError):
        expected_calibration_error(np.array([0.5, 0.5]), np.array([1]))


def test_reliability_table() -> None:
    conf = np.array([0.05, 0.55, 0.58, 0.95, 1.0])
    correct = np.array([0, 1, 0, 1, 1])
    table = reliability_table(conf, correct, n_bins=10)
    assert len(table) == 10
    assert [b.count for b in table] == [1, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert table[0] == ReliabilityBin(lo=0.0, hi=0.1, count=1, mean_confidence=0.05, accuracy=0.0)
    assert table[1].mean_confidence is None and table[1].accuracy is None and table[1].gap is None
    assert table[5].mean_confidence == pytest.approx(0.565)
    assert table[5].accuracy == 0.5
    assert table[9].accuracy == 1.0
    assert table[9].gap == pytest.approx(1.0 - 0.975)
    # The table and the ECE agree.
    ece = sum(b.count * abs(b.gap) for b in table if b.gap is not None) / conf.size
    assert ece == pytest.approx(expected_calibration_error(conf, correct, n_bins=10))


def _calibrated_logits(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax IS the true label distribution, and labels drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, size=(n, k))
    p = apply_temperature(logits, 1.0)
    labels = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return logits, np.minimum(labels, k - 1)


def test_temperature_recovers_overconfidence_and_lowers_held_out_ece() -> None:
    logits, labels = _calibrated_logits(20_000, 5, seed=2)
    over = logits * 4.0  # a model 4x too sure of itself
    fit, held = slice(0, 10_000), slice(10_000, None)
    temp = fit_temperature(over[fit], labels[fit])
    assert temp == pytest.approx(4.0, rel=0.08)

    def ece(proba: np.ndarray) -> float:
        return expected_calibration_error(proba.max(axis=1), proba.argmax(axis=1) == labels[held])

    before = ece(apply_temperature(over[held], 1.0))
    after = ece(apply_temperature(over[held], temp))
    assert before > 0.1
    assert after < 0.03
    assert nll(over[held], labels[held], temp) < nll(over[held], labels[held], 1.0)
    # Scaling never changes the predicted class.
    np.testing.assert_array_equal(apply_temperature(over, temp).argmax(1), over.argmax(1))


def test_temperature_of_calibrated_logits_is_about_one() -> None:
    logits, labels = _calibrated_logits(20_000, 4, seed=3)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.08)


def test_temperature_is_bounded() -> None:
    # Always right: NLL keeps falling as T -> 0 (until it underflows to 0), so T ends up small.
    logits = np.array([[5.0, 0.0], [0.0, 5.0]] * 10)
    labels = np.array([0, 1] * 10)
    assert 0.05 <= fit_temperature(logits, labels) < 0.25
    # Always wrong: NLL keeps falling as T grows; the upper bound stops it.
    assert fit_temperature(logits, 1 - labels) == pytest.approx(20.0, rel=0.01)


def test_fit_temperature_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((2, 2)), np.array([0, 2]))
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((0, 2)), np.array([], dtype=int))
    with pytest.raises(ValueError):
        fit_temperature(np.array([[0.0, np.nan]]), np.array([0]))


def test_apply_temperature_is_stable() -> None:
    p = apply_temperature(np.array([[1000.0, 0.0, -np.inf], [-1000.0, -1001.0, -1002.0]]), 0.5)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        apply_temperature(np.zeros((1, 2)), 0.0)
