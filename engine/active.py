"""Which resource to ask a human about next.

People answer a handful of "who owns this?" buttons a day, so each question has to count. The
queue ranks unlabelled resources by how unsure the model is about them, times how much money
they cost: a confident guess on a $2 bucket is fine, an unsure guess on a $40k/month cluster is
the question worth a person's attention. ``simulate_learning_curve`` replays that loop against
ground truth so strategies (and the ``random`` baseline) can be compared before asking anyone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "Method",
    "Strategy",
    "CurvePoint",
    "uncertainty",
    "rank_queries",
    "simulate_learning_curve",
]

Method = Literal["least_confidence", "margin", "entropy"]
Strategy = Literal["least_confidence", "margin", "entropy", "random"]
_METHODS = ("least_confidence", "margin", "entropy")

DEFAULT_COST_FLOOR = 0.01  # dollars/month: a free resource still ranks, just after every paid one


def _check_proba(proba: np.ndarray) -> np.ndarray:
    """Rows as probability distributions; all-zero rows become uniform ("knows nothing")."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 1:
        raise ValueError(f"proba must have shape (n, k), got {proba.shape}")
    if not np.all(np.isfinite(proba)) or (proba.size and proba.min() < 0):
        raise ValueError("proba must hold finite, non-negative values")
    sums = proba.sum(axis=1, keepdims=True)
    k = proba.shape[1]
    return np.where(sums > 0, proba / np.where(sums > 0, sums, 1.0), 1.0 / k)


def uncertainty(proba: np.ndarray, method: Method = "least_confidence") -> np.ndarray:
    """Per-row uncertainty in [0, 1]: 0 = certain of one class, 1 = as unsure as possible.

    - ``least_confidence``: (1 - max p) scaled by k/(k-1), so a uniform row scores 1 whatever k is.
    - ``margin``: 1 - (p_top1 - p_top2); focuses on the two teams the model hesitates between.
    - ``entropy``: Shannon entropy / log k; counts doubt spread over all teams.

    All three are normalised to the same range so scores from different methods (and different
    numbers of teams) read the same in the UI and combine with cost the same way.
    """
    if method not in _METHODS:
        raise ValueError(f"unknown uncertainty method {method!r}; expected one of {_METHODS}")
    p = _check_proba(proba)
    n, k = p.shape
    if k == 1:
        return np.zeros(n)
    if method == "least_confidence":
        u = (1.0 - p.max(axis=1)) * k / (k - 1)
    elif method == "margin":
        top2 = np.partition(p, k - 2, axis=1)[:, k - 2 :]
        u = 1.0 - (top2[:, 1] - top2[:, 0])
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(p > 0, p * np.log(p), 0.0)
        u = -plogp.sum(axis=1) / math.log(k)
    return np.clip(u, 0.0, 1.0)


def _clip_cost(monthly_cost: np.ndarray, n: int, floor: float) -> np.ndarray:
    cost = np.asarray(monthly_cost, dtype=np.float64).ravel()
    if cost.shape[0] != n:
        raise ValueError(f"monthly_cost has {cost.shape[0]} entries, expected {n}")
    # NaN (unknown cost), zero and negative (credits, refunds) all rank as "cheap", never vanish.
    return np.maximum(np.nan_to_num(cost, nan=floor, posinf=np.finfo(np.float64).max), floor)


def rank_queries(
    proba: np.ndarray,
    monthly_cost: np.ndarray,
    labeled_mask: np.ndarray,
    method: Strategy = "least_confidence",
    cost_weight: float = 1.0,
    cost_floor: float = DEFAULT_COST_FLOOR,
    seed: int = 0,
) -> np.ndarray:
    """Indices of unlabelled resources, best question first.

    Score = uncertainty x max(monthly_cost, cost_floor) ** cost_weight. ``cost_weight=0`` ranks by
    uncertainty alone; larger values favour expensive resources more. Ties go to the more expensive
    resource, then to the lower index, so the order is deterministic. Labelled resources are never
    returned. ``method="random"`` is the comparison baseline: a seeded shuffle of the unlabelled
    resources, blind to both uncertainty and cost.
    """
    if cost_floor <= 0:
        raise ValueError(f"cost_floor must be > 0, got {cost_floor}")
    p = _check_proba(proba)
    n = p.shape[0]
    labeled = np.asarray(labeled_mask, dtype=bool).ravel()
    if labeled.shape[0] != n:
        raise ValueError(f"labeled_mask has {labeled.shape[0]} entries, expected {n}")
    cost = _clip_cost(monthly_cost, n, cost_floor)
    candidates = np.flatnonzero(~labeled)
    if method == "random":
        return np.random.default_rng(seed).permutation(candidates).astype(np.int64)
    u = uncertainty(p, method)[candidates]
    c = cost[candidates]
    with np.errstate(over="ignore"):
        score = u * c**cost_weight
    order = np.lexsort((candidates, -c, -score))  # last key is primary
    return candidates[order].astype(np.int64)


@dataclass(frozen=True)
class CurvePoint:
    """The state of the simulated labelling loop after ``round`` rounds of questions.

    Two views of accuracy, because they answer different questions:

    - ``accuracy`` / ``cost_weighted_accuracy``: the model's accuracy on the eval resources whose
      owner is still unknown at this round (revealed ones are dropped). This is what the model is
      still responsible for, but the denominator shrinks differently per strategy: uncertainty
      sampling removes exactly the hard cases, which flatters it.
    - ``attributed_accuracy`` / ``attributed_cost_share``: over the *fixed* eval set, the fraction
      (of resources / of monthly cost) correctly attributed now, counting a human answer as
      correct. Same denominator every round and every strategy: the number to compare strategies on.

    Eval resources whose true owner is "no team" (-1) are not scored. Values are NaN when there is
    nothing to score (every eval resource revealed, or zero cost in the set).
    """

    round: int
    n_labels: int  # resources with a known team (initial labels + answers naming a team)
    n_queried: int  # questions asked so far (answers of "no team" included)
    n_eval: int  # eval resources still unknown, the denominator of ``accuracy``
    accuracy: float
    cost_weighted_accuracy: float
    attributed_accuracy: float
    attributed_cost_share: float


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else math.nan


def simulate_learning_curve(
    fit_predict: Callable[[np.ndarray], np.ndarray],
    y_true: np.ndarray,
    initial_labeled: np.ndarray,
    monthly_cost: np.ndarray,
    eval_mask: np.ndarray,
    batch: int,
    rounds: int,
    method: Strategy = "least_confidence",
    cost_weight: float = 1.0,
    cost_floor: float = DEFAULT_COST_FLOOR,
    seed: int = 0,
) -> list[CurvePoint]:
    """Replay "fit, ask the top ``batch`` questions, learn the answers" for ``rounds`` rounds.

    ``fit_predict(y)`` gets labels with -1 for unknown and returns (n, k) probabilities; it is
    called ``rounds + 1`` times (before the first question and after each round). The oracle is
    ``y_true``: a queried resource whose true owner is -1 (unowned) is answered "no team", stays -1
    for the model, and leaves the queue. Initially labelled resources start with their true label
    and are never asked. Returns one ``CurvePoint`` per evaluation (round 0 = before any question);
    the loop stops early when nobody is left to ask.
    """
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    n = y_true.shape[0]
    if batch < 1 or rounds < 0:
        raise ValueError(f"batch must be >= 1 and rounds >= 0, got batch={batch}, rounds={rounds}")
    known = np.asarray(initial_labeled, dtype=bool).ravel()
    scored = np.asarray(eval_mask, dtype=bool).ravel()
    for name, arr in (("initial_labeled", known), ("eval_mask", scored)):
        if arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} entries, expected {n}")
    cost = np.asarray(monthly_cost, dtype=np.float64).ravel()
    if cost.shape[0] != n:
        raise ValueError(f"monthly_cost has {cost.shape[0]} entries, expected {n}")
    value = np.maximum(np.nan_to_num(cost, nan=0.0), 0.0)  # dollars at stake, for cost-weighted scores

    asked = known.copy()  # resources whose answer we hold (labelled or "no team")
    y_obs = np.where(known, y_true, -1)
    scored &= y_true >= 0
    rng = np.random.default_rng(seed)
    n_queried = 0
    points: list[CurvePoint] = []

    for r in range(rounds + 1):
        proba = np.asarray(fit_predict(y_obs.copy()))
        if proba.ndim != 2 or proba.shape[0] != n:
            raise ValueError(f"fit_predict returned shape {proba.shape}, expected ({n}, k)")
        correct = proba.argmax(axis=1) == y_true
        unknown = scored & ~asked
        attributed = np.where(asked, y_obs == y_true, correct)
        points.append(
            CurvePoint(
                round=r,
                n_labels=int((y_obs >= 0).sum()),
                n_queried=n_queried,
                n_eval=int(unknown.sum()),
                accuracy=_ratio(correct[unknown].sum(), unknown.sum()),
                cost_weighted_accuracy=_ratio(value[unknown & correct].sum(), value[unknown].sum()),
                attributed_accuracy=_ratio(attributed[scored].sum(), scored.sum()),
                attributed_cost_share=_ratio(value[scored & attributed].sum(), value[scored].sum()),
            )
        )
        if r == rounds:
            break
        queue = rank_queries(
            proba,
            cost,
            asked,
            method=method,
            cost_weight=cost_weight,
            cost_floor=cost_floor,
            seed=int(rng.integers(2**63 - 1)),
        )
        if queue.size == 0:
            break
        ask = queue[:batch]
        y_obs[ask] = y_true[ask]
        asked[ask] = True
        n_queried += int(ask.size)
    return points
