"""Confidence you can trust.

The bot acts on confidence: above a threshold it proposes an owner tag, below it asks a human.
That only works if "90% confident" means right about 90% of the time. Neural networks are
usually over-confident, so the model's logits are rescaled by a single temperature fitted on
held-out labelled resources (Guo et al., 2017), and the result is checked with the expected
calibration error and a reliability table (which the benchmark and the digest can show).

Temperature scaling never changes which team is predicted (argmax is invariant to dividing the
logits by T > 0), only how sure the prediction claims to be, so it cannot cost accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

__all__ = [
    "ReliabilityBin",
    "expected_calibration_error",
    "reliability_table",
    "fit_temperature",
    "apply_temperature",
    "nll",
]

T_MIN = 0.05
T_MAX = 20.0


def _check_conf(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(conf, dtype=np.float64).ravel()
    correct = np.asarray(correct).ravel()
    if conf.shape != correct.shape:
        raise ValueError(f"conf and correct differ in length: {conf.shape[0]} vs {correct.shape[0]}")
    if conf.size == 0:
        raise ValueError("calibration needs at least one prediction")
    if not np.all(np.isfinite(conf)) or conf.min() < 0.0 or conf.max() > 1.0:
        raise ValueError("conf must be probabilities in [0, 1]")
    return conf, correct.astype(np.float64)


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins [i/n, (i+1)/n); conf == 1.0 goes to the last bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)


@dataclass(frozen=True)
class ReliabilityBin:
    """One bar of a reliability diagram.

    ``mean_confidence`` and ``accuracy`` are None for an empty bin (rather than NaN) so the table
    serialises to JSON and renders as "no data" instead of a misleading zero.
    """

    lo: float
    hi: float
    count: int
    mean_confidence: float | None
    accuracy: float | None

    @property
    def gap(self) -> float | None:
        """accuracy - confidence: negative means over-confident in this bin."""
        if self.accuracy is None or self.mean_confidence is None:
            return None
        return self.accuracy - self.mean_confidence


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE: count-weighted mean of |accuracy - mean confidence| over equal-width confidence bins.

    ``conf`` is the confidence of each prediction (usually the top-class probability), ``correct``
    whether that prediction was right. 0 is perfectly calibrated. Raises on empty input because
    "calibration error of nothing" has no value a caller should silently use.
    """
    conf, correct = _check_conf(conf, correct)
    idx = _bin_index(conf, n_bins)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_correct = np.bincount(idx, weights=correct, minlength=n_bins)
    # sum over bins of n_b/N * |acc_b - conf_b| == sum over bins of |sum_correct_b - sum_conf_b| / N
    return float(np.abs(sum_correct - sum_conf).sum() / conf.size)


def reliability_table(conf: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> list[ReliabilityBin]:
    """Per confidence bin: how many predictions, how confident they claimed to be, how often right.

    All ``n_bins`` bins are returned, empty ones included, so every table has the same x-axis.
    """
    conf, correct = _check_conf(conf, correct)
    idx = _bin_index(conf, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_correct = np.bincount(idx, weights=correct, minlength=n_bins)
    table: list[ReliabilityBin] = []
    for b in range(n_bins):
        c = int(count[b])
        table.append(
            ReliabilityBin(
                lo=b / n_bins,
                hi=(b + 1) / n_bins,
                count=c,
                mean_confidence=float(sum_conf[b] / c) if c else None,
                accuracy=float(sum_correct[b] / c) if c else None,
            )
        )
    return table


def _check_logits(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"logits must have shape (n, k), got {logits.shape}")
    if np.isnan(logits).any() or np.isposinf(logits).any():
        raise ValueError("logits must not hold NaN or +inf (-inf marks an impossible class and is allowed)")
    return logits


def nll(logits: np.ndarray, labels: np.ndarray, T: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
    logits = _check_logits(logits)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    logp = log_softmax(logits / T, axis=1)
    return float(-logp[np.arange(labels.size), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, label_noise: bool = False) -> float:
    """The temperature T in [0.05, 20] minimising the NLL of softmax(logits / T) on held-out labels.

    Fit on labelled resources the model did NOT train on; fitting on training resources would learn
    the model's (over-)confidence on data it memorised. The search runs over log T with bounded
    Brent: the NLL is convex in 1/T, hence unimodal in log T, so a bounded scalar search finds the
    global minimum, and the log scale treats "2x too sure" and "2x too unsure" alike.

    With ``label_noise`` the labels are owner tags, a few of which are simply wrong (stale or
    copy-pasted). Each label is then modelled as right with probability 1 - eps and uniformly wrong
    otherwise, and T is fitted jointly with eps: a wrong tag is explained by eps instead of dragging
    T up, which would leave the model under-confident on the resources whose truth it gets right.
    """
    logits = _check_logits(logits)
    labels = np.asarray(labels).ravel()
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"logits has {logits.shape[0]} rows but labels has {labels.shape[0]}")
    if labels.size == 0:
        raise ValueError("fit_temperature needs at least one labelled example")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("labels must be integer class ids")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be in 0..{logits.shape[1] - 1}")
    rows = np.arange(labels.size)
    target = logits[rows, labels]
    if np.isneginf(target).any():
        raise ValueError("a label has logit -inf: no temperature can make it possible")

    if label_noise and logits.shape[1] > 1:
        from scipy.optimize import minimize

        k = logits.shape[1]

        def noisy(params: np.ndarray) -> float:
            log_t, a = params
            eps = 0.5 / (1 + math.exp(-a))  # 0 .. 0.5: at most half the tags wrong
            p = softmax(logits / math.exp(log_t), axis=1)[rows, labels]
            return float(-np.log((1 - eps) * p + eps * (1 - p) / (k - 1) + 1e-12).mean())

        res = minimize(noisy, x0=np.array([0.0, -3.0]), method="L-BFGS-B",
                       bounds=[(math.log(T_MIN), math.log(T_MAX)), (-12.0, 12.0)])
        return float(math.exp(res.x[0]))

    def objective(log_t: float) -> float:
        logp = log_softmax(logits / math.exp(log_t), axis=1)
        return float(-logp[rows, labels].mean())

    res = minimize_scalar(
        objective,
        bounds=(math.log(T_MIN), math.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(math.exp(res.x))


def apply_temperature(logits: np.ndarray, T: float) -> np.ndarray:
    """softmax(logits / T), computed stably (max-subtracted) so large logits do not overflow."""
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"temperature must be a positive finite number, got {T}")
    logits = _check_logits(logits)
    return softmax(logits / T, axis=1)
