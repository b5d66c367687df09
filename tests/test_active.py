from __future__ import annotations

import math

import numpy as np
import pytest

from engine.active import CurvePoint, rank_queries, simulate_learning_curve, uncertainty
from engine.baselines import knn

# ---------------------------------------------------------------------------- uncertainty


@pytest.mark.parametrize("method", ["least_confidence", "margin", "entropy"])
def test_uncertainty_range_and_extremes(method: str) -> None:
    p = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1], [0.0, 0.0, 0.0]])
    u = uncertainty(p, method)  # type: ignore[arg-type]
    assert u.shape == (4,)
    assert np.all((u >= 0) & (u <= 1))
    assert u[0] == pytest.approx(0.0)
    assert u[1] == pytest.approx(1.0)
    assert u[3] == pytest.approx(1.0)  # an all-zero row means the model knows nothing
    assert 0 < u[2] < 1


def test_uncertainty_values() -> None:
    p = np.array([[0.6, 0.3, 0.1]])
    assert uncertainty(p, "least_confidence")[0] == pytest.approx(0.4 * 3 / 2)
    assert uncertainty(p, "margin")[0] == pytest.approx(0.7)
    h = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1)) / math.log(3)
    assert uncertainty(p, "entropy")[0] == pytest.approx(h)


def test_margin_and_entropy_disagree_where_they_should() -> None:
    # Two-way doubt vs doubt spread thin: margin says the first is less certain, entropy the second.
    p = np.array([[0.5, 0.5, 0.0, 0.0], [0.55, 0.15, 0.15, 0.15]])
    assert uncertainty(p, "margin")[0] > uncertainty(p, "margin")[1]
    assert uncertainty(p, "entropy")[0] < uncertainty(p, "entropy")[1]


def test_uncertainty_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        uncertainty(np.array([[0.5, 0.5]]), "confidence")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        uncertainty(np.array([[np.nan, 0.5]]))
    with pytest.raises(ValueError):
        uncertainty(np.array([0.5, 0.5]))


def test_single_class_is_never_uncertain() -> None:
    np.testing.assert_array_equal(uncertainty(np.ones((3, 1)), "entropy"), 0.0)


# ---------------------------------------------------------------------------- ranking


def test_rank_queries_uncertainty_times_cost() -> None:
    proba = np.array(
        [
            [0.5, 0.5],  # 0: u=1.0
            [0.9, 0.1],  # 1: u=0.2
            [0.7, 0.3],  # 2: u=0.6
            [0.5, 0.5],  # 3: u=1.0, labelled
            [1.0, 0.0],  # 4: u=0
            [0.5, 0.5],  # 5: u=1.0, free
        ]
    )
    cost = np.array([10.0, 100.0, 30.0, 1000.0, 5.0, 0.0])
    labeled = np.array([False, False, False, True, False, False])
    # scores: 0 -> 10, 1 -> 20, 2 -> 18, 4 -> 0, 5 -> 0.01 (floor)
    assert rank_queries(proba, cost, labeled).tolist() == [1, 2, 0, 5, 4]
    # uncertainty only; ties (0 and 5 at u=1) go to the more expensive resource
    assert rank_queries(proba, cost, labeled, cost_weight=0.0).tolist() == [0, 5, 2, 1, 4]


def test_rank_queries_ties_and_zero_cost() -> None:
    proba = np.full((4, 2), 0.5)
    cost = np.array([0.0, -3.0, np.nan, 0.0])  # free, refunded, unknown: all at the floor
    order = rank_queries(proba, cost, np.zeros(4, dtype=bool))
    assert order.tolist() == [0, 1, 2, 3]  # deterministic by index when everything ties
    assert rank_queries(proba, np.array([1.0, 2.0, 2.0, 0.5]), np.zeros(4, dtype=bool)).tolist() == [
        1,
        2,
        0,
        3,
    ]


def test_rank_queries_excludes_labeled_and_random_is_seeded() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=50)
    cost = rng.exponential(100, 50)
    labeled = rng.random(50) < 0.4
    for method in ("least_confidence", "margin", "entropy", "random"):
        order = rank_queries(proba, cost, labeled, method=method)  # type: ignore[arg-type]
        assert sorted(order.tolist()) == np.flatnonzero(~labeled).tolist()
    a = rank_queries(proba, cost, labeled, method="random", seed=3)
    b = rank_queries(proba, cost, labeled, method="random", seed=3)
    np.testing.assert_array_equal(a, b)
    assert rank_queries(proba, cost, np.ones(50, dtype=bool)).size == 0


def test_rank_queries_checks_lengths() -> None:
    with pytest.raises(ValueError, match="monthly_cost"):
        rank_queries(np.full((3, 2), 0.5), np.ones(2), np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="labeled_mask"):
        rank_queries(np.full((3, 2), 0.5), np.ones(3), np.zeros(2, dtype=bool))


# ---------------------------------------------------------------------------- simulation


def _toy(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two overlapping clusters; two labelled resources per team to start with."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = np.column_stack([np.where(y == 1, 1.0, -1.0) + rng.normal(0, 1.0, n), rng.normal(0, 1.0, n)])
    init = np.zeros(n, dtype=bool)
    init[np.flatnonzero(y == 0)[:2]] = True
    init[np.flatnonzero(y == 1)[:2]] = True
    return X, y, init


def test_simulation_bookkeeping() -> None:
    X, y, init = _toy(0, n=120)
    y = y.copy()
    y[[10, 11, 12]] = -1  # unowned resources: answered "no team"
    init[[10, 11, 12]] = False
    calls: list[np.ndarray] = []

    def fit_predict(labels: np.ndarray) -> np.ndarray:
        calls.append(labels.copy())
        return knn(X, labels, 2)

    cost = np.ones(len(y))
    pts = simulate_learning_curve(fit_predict, y, init, cost, ~init, batch=7, rounds=4, method="entropy")
    assert len(pts) == 5 and len(calls) == 5
    assert all(isinstance(p, CurvePoint) for p in pts)
    assert [p.round for p in pts] == [0, 1, 2, 3, 4]
    assert [p.n_queried for p in pts] == [0, 7, 14, 21, 28]
    assert pts[0].n_labels == 4
    labels_gained = np.diff([p.n_labels for p in pts])
    assert np.all(labels_gained <= 7) and labels_gained.sum() >= 28 - 3
    # Eval set shrinks exactly by the answers that named a team inside it.
    assert pts[0].n_eval == int(((~init) & (y >= 0)).sum())
    assert all(p.n_eval + (p.n_labels - 4) == pts[0].n_eval for p in pts)
    # The model never sees a label it was not given; unowned resources stay -1.
    for labels in calls:
        assert np.all(labels[[10, 11, 12]] == -1)
        assert np.all((labels == -1) | (labels == y))
    # With equal costs the cost-weighted figures equal the plain ones.
    for p in pts:
        assert p.cost_weighted_accuracy == pytest.approx(p.accuracy)
        assert p.attributed_cost_share == pytest.approx(p.attributed_accuracy)


def test_simulation_stops_when_nobody_is_left() -> None:
    X, y, init = _toy(1, n=30)
    pts = simulate_learning_curve(
        lambda lab: knn(X, lab, 2), y, init, np.ones(30), ~init, batch=10, rounds=10
    )
    assert [p.n_queried for p in pts] == [0, 10, 20, 26]
    assert pts[-1].n_eval == 0 and math.isnan(pts[-1].accuracy)
    assert pts[-1].attributed_accuracy == 1.0


def test_uncertainty_sampling_beats_random() -> None:
    final: dict[str, list[float]] = {"least_confidence": [], "random": []}
    for seed in range(3):
        X, y, init = _toy(seed)
        for method in final:
            pts = simulate_learning_curve(
                lambda lab, X=X: knn(X, lab, 2, k=5),
                y,
                init,
                np.ones(len(y)),
                ~init,
                batch=10,
                rounds=6,
                method=method,  # type: ignore[arg-type]
                cost_weight=0.0,
                seed=seed,
            )
            assert pts[-1].n_labels == 4 + 60
            assert pts[-1].attributed_accuracy > pts[0].attributed_accuracy
            final[method].append(pts[-1].attributed_accuracy)
    assert np.mean(final["least_confidence"]) > np.mean(final["random"]) + 0.02


def test_cost_weighting_attributes_more_dollars_first() -> None:
    X, y, init = _toy(2)
    rng = np.random.default_rng(2)
    cost = rng.pareto(1.2, len(y)) * 100  # a few resources carry most of the bill
    kwargs = dict(y_true=y, initial_labeled=init, monthly_cost=cost, eval_mask=~init, batch=10, rounds=2)
    by_cost = simulate_learning_curve(lambda lab: knn(X, lab, 2), cost_weight=1.0, **kwargs)  # type: ignore[arg-type]
    by_doubt = simulate_learning_curve(lambda lab: knn(X, lab, 2), cost_weight=0.0, **kwargs)  # type: ignore[arg-type]
    assert by_cost[-1].attributed_cost_share > by_doubt[-1].attributed_cost_share


def test_simulation_validates_inputs() -> None:
    y = np.array([0, 1, -1])
    m = np.array([True, False, False])
    with pytest.raises(ValueError, match="batch"):
        simulate_learning_curve(lambda lab: np.full((3, 2), 0.5), y, m, np.ones(3), ~m, batch=0, rounds=1)
    with pytest.raises(ValueError, match="fit_predict"):
        simulate_learning_curve(lambda lab: np.full((2, 2), 0.5), y, m, np.ones(3), ~m, batch=1, rounds=1)
    with pytest.raises(ValueError, match="eval_mask"):
        simulate_learning_curve(lambda lab: np.full((3, 2), 0.5), y, m, np.ones(3), m[:2], batch=1, rounds=1)
