from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp

from engine.baselines import (
    class_prior,
    knn,
    label_propagation,
    logistic_regression,
    majority,
    role_vote,
)


def _rows_sum_to_one(p: np.ndarray, n: int, k: int) -> None:
    assert p.shape == (n, k)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)


def _line_problem() -> tuple[np.ndarray, np.ndarray]:
    X = np.array([[-2.0, 0.1], [-1.0, -0.2], [1.0, 0.0], [2.0, 0.3], [-1.5, 0.0], [1.5, -0.1]])
    y = np.array([0, 0, 1, 1, -1, -1])
    return X, y


# ---------------------------------------------------------------------------- helpers


def test_class_prior() -> None:
    np.testing.assert_allclose(class_prior(np.array([0, 0, 2, -1]), 3), [2 / 3, 0, 1 / 3])
    np.testing.assert_allclose(class_prior(np.array([-1, -1]), 4), [0.25] * 4)


@pytest.mark.parametrize("y", [np.array([0, 3]), np.array([-2, 0]), np.array([0.5, 1.0])])
def test_bad_labels_are_rejected(y: np.ndarray) -> None:
    with pytest.raises(ValueError):
        majority(y, 3)


# ---------------------------------------------------------------------------- majority


def test_majority() -> None:
    p = majority(np.array([0, 2, 2, -1, -1]), 3)
    _rows_sum_to_one(p, 5, 3)
    np.testing.assert_array_equal(p, np.tile([0.0, 0.0, 1.0], (5, 1)))


def test_majority_without_labels_is_uniform() -> None:
    np.testing.assert_allclose(majority(np.array([-1, -1]), 4), 0.25)


# ---------------------------------------------------------------------------- feature baselines


def test_logistic_regression_separable() -> None:
    X, y = _line_problem()
    p = logistic_regression(X, y, n_classes=3)
    _rows_sum_to_one(p, 6, 3)
    assert p.argmax(axis=1).tolist() == [0, 0, 1, 1, 0, 1]
    assert np.all(p[:, 2] == 0.0)  # no labelled resource in class 2


def test_logistic_regression_single_class_gives_prior() -> None:
    X, _ = _line_problem()
    p = logistic_regression(X, np.array([1, 1, -1, -1, -1, -1]), n_classes=2)
    np.testing.assert_allclose(p, np.tile([0.0, 1.0], (6, 1)))


def test_logistic_regression_rejects_nan_features() -> None:
    X, y = _line_problem()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        logistic_regression(X, y, 2)


def test_knn_separable_and_k_shrinks() -> None:
    X, y = _line_problem()
    p = knn(X, y, n_classes=2, k=50)  # only 4 labelled resources: k becomes 4
    _rows_sum_to_one(p, 6, 2)
    assert p.argmax(axis=1).tolist() == [0, 0, 1, 1, 0, 1]
    one = np.array([-1, -1, 1, -1, -1, -1])
    np.testing.assert_allclose(knn(X, one, n_classes=2), np.tile([0.0, 1.0], (6, 1)))


def test_knn_scaling_matters() -> None:
    # Feature 0 decides the class; feature 1 is huge-scale noise that dominates raw distances.
    rng = np.random.default_rng(0)
    n = 200
    cls = rng.integers(0, 2, n)
    X = np.column_stack([cls * 2.0 + rng.normal(0, 0.1, n), rng.normal(0, 1000.0, n)])
    y = cls.copy()
    y[100:] = -1
    scaled = knn(X, y, 2, k=5).argmax(axis=1)[100:]
    raw = knn(X, y, 2, k=5, scale=False).argmax(axis=1)[100:]
    assert (scaled == cls[100:]).mean() > 0.9
    assert (scaled == cls[100:]).mean() > (raw == cls[100:]).mean()


# ---------------------------------------------------------------------------- label propagation


def _clique(nodes: list[int], n: int) -> sp.csr_matrix:
    rows, cols = zip(*[(a, b) for a in nodes for b in nodes if a != b], strict=True)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def test_label_propagation_two_disconnected_cliques() -> None:
    n = 9
    W = _clique([0, 1, 2, 3], n) + _clique([4, 5, 6, 7], n)  # node 8 is isolated
    y = np.full(n, -1)
    y[0] = 0
    y[4] = 1
    y[5] = 1
    p = label_propagation(W, y, n_classes=3)
    _rows_sum_to_one(p, n, 3)
    np.testing.assert_allclose(p[:4], np.tile([1.0, 0.0, 0.0], (4, 1)), atol=1e-12)
    np.testing.assert_allclose(p[4:8], np.tile([0.0, 1.0, 0.0], (4, 1)), atol=1e-12)
    np.testing.assert_allclose(p[8], [1 / 3, 2 / 3, 0.0])  # isolated: class prior


def test_label_propagation_unlabelled_component_gets_prior() -> None:
    n = 6
    W = _clique([0, 1, 2], n) + _clique([3, 4, 5], n)
    y = np.array([0, 1, -1, -1, -1, -1])
    p = label_propagation(W, y, n_classes=2)
    np.testing.assert_allclose(p[3:], 0.5)
    assert p[2, 0] == pytest.approx(0.5)  # equidistant from both labels


def test_label_propagation_follows_the_chain() -> None:
    # 0 - 1 - 2 - 3 - 4 - 5 path; labels at both ends; each half goes to its nearer end.
    n = 6
    rows = np.arange(n - 1)
    W = sp.coo_matrix((np.ones(n - 1), (rows, rows + 1)), shape=(n, n))  # directed: gets symmetrised
    y = np.array([0, -1, -1, -1, -1, 1])
    p = label_propagation(W, y, 2)
    assert p.argmax(axis=1).tolist() == [0, 0, 0, 1, 1, 1]


def test_label_propagation_matches_sklearn_fixed_point() -> None:
    from sklearn.semi_supervised import LabelSpreading

    rng = np.random.default_rng(1)
    n = 60
    A = sp.random(n, n, density=0.1, random_state=2, format="csr")
    W = (A + A.T).tocsr()
    W = (W - sp.diags(W.diagonal())).tocsr()
    W.eliminate_zeros()
    y = np.full(n, -1)
    y[rng.choice(n, 15, replace=False)] = rng.integers(0, 3, 15)
    ours = label_propagation(W, y, 3, alpha=0.8, max_iter=2000, tol=1e-14)
    model = LabelSpreading(kernel=lambda a, b: W.tocoo(), alpha=0.8, max_iter=2000, tol=1e-14)
    model.fit(np.arange(n, dtype=float).reshape(-1, 1), y)
    theirs = np.zeros((n, 3))
    theirs[:, model.classes_[model.classes_ >= 0]] = model.label_distributions_
    reached = theirs.sum(axis=1) > 0
    np.testing.assert_allclose(ours[reached], theirs[reached], atol=1e-8)


def test_label_propagation_rejects_bad_graphs() -> None:
    y = np.array([0, -1])
    with pytest.raises(ValueError, match="shape"):
        label_propagation(sp.eye(3, format="csr"), y, 2)
    with pytest.raises(ValueError, match="non-negative"):
        label_propagation(sp.csr_matrix(np.array([[0.0, -1.0], [-1.0, 0.0]])), y, 2)
    with pytest.raises(ValueError, match="sparse"):
        label_propagation(np.ones((2, 2)), y, 2)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- role vote


def _calls(entries: list[tuple[int, int, float]], n_res: int, n_princ: int) -> sp.csr_matrix:
    r, p, c = zip(*entries, strict=True)
    return sp.csr_matrix((c, (r, p)), shape=(n_res, n_princ))


def test_role_vote_hand_made() -> None:
    # principals: 0 = A, 1 = B, 2 = C (only calls r3), 3 = D (calls nothing labelled)
    C = _calls(
        [
            (0, 0, 5), (1, 0, 3), (4, 0, 10),  # A: r0, r1 (team 0) and hidden r4
            (2, 1, 4), (5, 1, 2), (4, 1, 1),  # B: r2 (team 1), hidden r5, and r4 once
            (3, 2, 7),  # C: only r3 (team 1)
            (6, 3, 9),  # D: only hidden r6
        ],
        n_res=7,
        n_princ=4,
    )  # fmt: skip
    y = np.array([0, 0, 1, 1, -1, -1, -1])
    p = role_vote(C, y, n_classes=2)
    _rows_sum_to_one(p, 7, 2)
    np.testing.assert_allclose(p[4], [10 / 11, 1 / 11])  # call-weighted vote of A and B
    np.testing.assert_allclose(p[5], [0.0, 1.0])
    np.testing.assert_allclose(p[6], [0.5, 0.5])  # D abstains: class prior
    np.testing.assert_allclose(p[0], [1.0, 0.0])  # A still says team 0 because of r1
    # r2's only voter B has no labelled evidence but r2 itself, so B abstains for r2 and r2 gets the
    # prior of the OTHER labelled resources (r0, r1: team 0; r3: team 1). Same for r3 and C.
    np.testing.assert_allclose(p[2], [2 / 3, 1 / 3])
    np.testing.assert_allclose(p[3], [2 / 3, 1 / 3])


def test_role_vote_leave_one_out_does_not_predict_own_label() -> None:
    # r0 is alone with a unique principal; all other labelled resources are team 0.
    C = _calls([(0, 0, 100), (1, 1, 1), (2, 1, 1), (3, 1, 1)], n_res=4, n_princ=2)
    y = np.array([1, 0, 0, -1])
    p = role_vote(C, y, n_classes=2)
    np.testing.assert_allclose(p[0], [1.0, 0.0])  # prior of the others, never its own label
    assert p[0, 1] == 0.0


def test_role_vote_ties_are_split() -> None:
    C = _calls([(0, 0, 1), (1, 0, 1), (2, 0, 1)], n_res=3, n_princ=1)
    p = role_vote(C, np.array([0, 1, -1]), n_classes=3)
    np.testing.assert_allclose(p[2], [0.5, 0.5, 0.0])


def _role_vote_reference(C: sp.csr_matrix, y: np.ndarray, k: int) -> np.ndarray:
    """Definition by brute force: predict a labelled resource with its own label hidden."""

    def plain(labels: np.ndarray) -> np.ndarray:
        Y = np.zeros((len(labels), k))
        Y[labels >= 0, labels[labels >= 0]] = 1
        P = C.T.toarray() @ Y
        T = np.zeros_like(P)
        for i, row in enumerate(P):
            if row.sum() > 0:
                top = row == row.max()
                T[i] = top / top.sum()
        s = C.toarray() @ T
        counts = Y.sum(axis=0)
        prior = counts / counts.sum() if counts.sum() else np.full(k, 1 / k)
        out = np.empty_like(s)
        for i, row in enumerate(s):
            out[i] = row / row.sum() if row.sum() > 0 else prior
        return out

    out = plain(y)
    for r in np.flatnonzero(y >= 0):
        hidden = y.copy()
        hidden[r] = -1
        out[r] = plain(hidden)[r]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_role_vote_matches_leave_one_out_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_res, n_princ, k = 40, 12, 3
    C = sp.random(n_res, n_princ, density=0.15, random_state=seed, format="csr")
    C.data = np.ceil(C.data * 5)
    y = rng.integers(-1, k, n_res)
    np.testing.assert_allclose(role_vote(C, y, k, chunk=7), _role_vote_reference(C, y, k), atol=1e-12)


# ---------------------------------------------------------------------------- all baselines


def test_all_rows_sum_to_one_with_missing_classes() -> None:
    rng = np.random.default_rng(3)
    n, k = 80, 5
    X = rng.normal(size=(n, 4))
    y = np.where(rng.random(n) < 0.5, rng.integers(0, 3, n), -1)  # classes 3, 4 never labelled
    W = sp.random(n, n, density=0.05, random_state=3, format="csr")
    C = sp.random(n, 10, density=0.2, random_state=4, format="csr")
    for p in (
        majority(y, k),
        logistic_regression(X, y, k),
        knn(X, y, k),
        label_propagation(W, y, k),
        role_vote(C, y, k),
    ):
        _rows_sum_to_one(p, n, k)
        assert np.all(p[:, 3:] == 0.0)


def test_graph_baselines_scale() -> None:
    rng = np.random.default_rng(5)
    n, k, nnz = 50_000, 12, 500_000
    team = rng.integers(0, k, n)
    # Affinity mostly within teams, plus noise edges.
    src = rng.integers(0, n, nnz)
    same = rng.random(nnz) < 0.8
    by_team = [np.flatnonzero(team == t) for t in range(k)]
    dst = rng.integers(0, n, nnz)
    for t in range(k):
        m = same & (team[src] == t)
        dst[m] = rng.choice(by_team[t], int(m.sum()))
    W = sp.csr_matrix((np.ones(nnz), (src, dst)), shape=(n, n))
    y = np.where(rng.random(n) < 0.3, team, -1)
    hidden = y < 0

    t0 = time.perf_counter()
    p = label_propagation(W, y, k)
    t_lp = time.perf_counter() - t0
    assert (p[hidden].argmax(axis=1) == team[hidden]).mean() > 0.8

    # 2,000 principals, each mostly calling one team's resources.
    n_princ = 2_000
    p_team = rng.integers(0, k, n_princ)
    calls_p = rng.integers(0, n_princ, nnz)
    calls_r = rng.integers(0, n, nnz)
    own = rng.random(nnz) < 0.8
    for t in range(k):
        m = own & (p_team[calls_p] == t)
        calls_r[m] = rng.choice(by_team[t], int(m.sum()))
    C = sp.csr_matrix((rng.integers(1, 20, nnz).astype(float), (calls_r, calls_p)), shape=(n, n_princ))
    t0 = time.perf_counter()
    q = role_vote(C, y, k)
    t_rv = time.perf_counter() - t0
    assert (q[hidden].argmax(axis=1) == team[hidden]).mean() > 0.8
    assert t_lp < 10 and t_rv < 10, (t_lp, t_rv)
