"""Baselines the GNN is compared against.

A graph neural network is only worth its cost if it beats the simple things a platform engineer
would try first: "everything belongs to the biggest team", a classifier on the behavioural
features, nearest neighbours, spreading labels over the resource graph, and "whoever's role calls
it owns it". Each baseline here takes the same inputs as the model (integer labels, ``-1`` for a
resource whose owner is hidden) and returns the same output (a probability row per resource over
classes ``0..n_classes-1``, rows summing to 1), so the benchmark can score them side by side.

``n_classes`` is always explicit: a class may have no labelled resource in a given split, and the
columns must still line up with the model's.

Predictions are returned for *every* resource. For labelled resources they are in-sample (the
model saw that label), except ``role_vote``, which is leave-one-out; score baselines on hidden
resources.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "class_prior",
    "majority",
    "logistic_regression",
    "knn",
    "label_propagation",
    "role_vote",
]


# ---------------------------------------------------------------------------- helpers


def _check_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Labels as int64, validated: -1 (hidden) or a class in 0..n_classes-1."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if (
        y.size
        and not np.issubdtype(y.dtype, np.integer)
        and (not np.all(np.isfinite(y)) or not np.all(y == np.round(y)))
    ):
        raise ValueError("y must hold integer class ids (-1 for unlabelled)")
    y = y.astype(np.int64, copy=False)
    bad = (y < -1) | (y >= n_classes)
    if bad.any():
        raise ValueError(
            f"y holds {int(bad.sum())} value(s) outside -1..{n_classes - 1}, e.g. {int(y[bad][0])}"
        )
    return y


def _check_features(X: np.ndarray, n: int) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != n:
        raise ValueError(f"X must have shape (n={n}, d), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X holds NaN or infinite values; impute features before fitting a baseline")
    return X


def class_prior(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Class frequencies among labelled resources; uniform when nothing is labelled.

    The fallback for every baseline when it has no evidence about a resource: the honest answer is
    "as likely as any labelled resource to be each team".
    """
    y = _check_labels(y, n_classes)
    counts = np.bincount(y[y >= 0], minlength=n_classes).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.full(n_classes, 1.0 / n_classes)


def _onehot(y: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot rows for labelled resources, zero rows for hidden ones."""
    out = np.zeros((y.shape[0], n_classes), dtype=np.float64)
    lab = np.flatnonzero(y >= 0)
    out[lab, y[lab]] = 1.0
    return out


def _expand(proba: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Put an sklearn ``predict_proba`` (columns = classes seen in training) into 0..n_classes-1."""
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(classes, dtype=np.int64)] = proba
    return _normalize_rows(out, np.full(n_classes, 1.0 / n_classes))


def _normalize_rows(scores: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; rows with no mass get ``fallback`` (a distribution)."""
    sums = scores.sum(axis=1)
    empty = ~(sums > 0)
    out = scores / np.where(empty, 1.0, sums)[:, None]
    out[empty] = fallback
    return out


def _constant(n: int, row: np.ndarray) -> np.ndarray:
    return np.tile(np.asarray(row, dtype=np.float64), (n, 1))


# ---------------------------------------------------------------------------- feature baselines


def majority(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Every resource belongs to the team that owns the most labelled resources.

    The floor any model must clear; it is also what "accuracy" looks like when classes are
    imbalanced, which is why the benchmark reports it next to everything else.
    """
    y = _check_labels(y, n_classes)
    n = y.shape[0]
    lab = y >= 0
    if not lab.any():
        return _constant(n, np.full(n_classes, 1.0 / n_classes))
    clf = DummyClassifier(strategy="most_frequent").fit(np.zeros((int(lab.sum()), 1)), y[lab])
    row = _expand(clf.predict_proba(np.zeros((1, 1))), clf.classes_, n_classes)[0]
    return _constant(n, row)


def logistic_regression(X: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0) -> np.ndarray:
    """Multinomial logistic regression on the behavioural features, no graph.

    Features are standardised (activity counts and ratios live on wildly different scales) and
    classes balanced, because a few big teams own most tagged resources and an unbalanced fit would
    just learn the majority baseline again.
    """
    y = _check_labels(y, n_classes)
    X = _check_features(X, y.shape[0])
    lab = y >= 0
    present = np.unique(y[lab])
    if present.size < 2:
        # One labelled class (or none): there is nothing to discriminate; the prior is the answer.
        return _constant(y.shape[0], class_prior(y, n_classes))
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
    )
    model.fit(X[lab], y[lab])
    return _expand(model.predict_proba(X), model.classes_, n_classes)


def knn(X: np.ndarray, y: np.ndarray, n_classes: int, k: int = 5, scale: bool = True) -> np.ndarray:
    """k nearest labelled neighbours in feature space, weighted by inverse distance.

    ``k`` shrinks to the number of labelled resources when there are fewer, so the baseline still
    answers in a nearly untagged account. Features are standardised by default for the same reason
    as in ``logistic_regression``: otherwise the feature with the largest unit decides "near".
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y = _check_labels(y, n_classes)
    X = _check_features(X, y.shape[0])
    lab = y >= 0
    n_lab = int(lab.sum())
    if n_lab == 0:
        return _constant(y.shape[0], np.full(n_classes, 1.0 / n_classes))
    steps = [StandardScaler()] if scale else []
    model = make_pipeline(*steps, KNeighborsClassifier(n_neighbors=min(k, n_lab), weights="distance"))
    model.fit(X[lab], y[lab])
    return _expand(model.predict_proba(X), model.classes_, n_classes)


# ---------------------------------------------------------------------------- graph baselines


def label_propagation(
    W: sp.spmatrix | sp.sparray,
    y: np.ndarray,
    n_classes: int,
    alpha: float = 0.9,
    max_iter: int = 50,
    tol: float = 1e-6,
) -> np.ndarray:
    """Label spreading over the resource graph (Zhou et al., 2004), sparse throughout.

    Iterates ``F <- alpha * S F + (1 - alpha) * Y`` with ``S = D^-1/2 W D^-1/2`` (self-loops
    removed): each resource takes the degree-normalised average of its neighbours' beliefs, while
    labelled resources keep pulling back toward their own label (the ``(1 - alpha) Y`` clamp).
    It is the "graph without learning" baseline: if the GNN cannot beat homophily alone, its
    features add nothing.

    Why not ``sklearn.semi_supervised.LabelSpreading``: it does accept a callable kernel returning
    a sparse matrix (and is fast enough), but only through a dummy ``X`` and a kernel that ignores
    its arguments, it silently drops classes that have no labelled resource, it leaves isolated
    nodes as all-zero rows, and its stopping rule is an absolute total change that scales with n.
    This implementation is the same fixed point with those handled.

    A non-symmetric ``W`` (directed flow traffic) is symmetrised as ``(W + W.T) / 2`` because the
    normalisation assumes symmetry. Resources that no label reaches (isolated, or in a component
    with no labelled resource) get the class prior. Runs in about a second at n=100,000 with 1M
    non-zeros.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    y = _check_labels(y, n_classes)
    n = y.shape[0]
    if not sp.issparse(W):
        raise ValueError("W must be a scipy.sparse matrix")
    if W.shape != (n, n):
        raise ValueError(f"W must have shape ({n}, {n}), got {W.shape}")
    W = sp.csr_matrix(W, dtype=np.float64)
    if W.nnz and (not np.all(np.isfinite(W.data)) or W.data.min() < 0):
        raise ValueError("W must hold finite, non-negative affinities")
    W = ((W + W.T) * 0.5).tocsr()
    W = (W - sp.diags(W.diagonal())).tocsr()  # no self-loops: a node must not reinforce itself
    W.eliminate_zeros()

    degree = np.asarray(W.sum(axis=1)).ravel()
    inv_sqrt = np.zeros(n)
    np.divide(1.0, np.sqrt(degree), out=inv_sqrt, where=degree > 0)
    Dm = sp.diags(inv_sqrt)
    S = (Dm @ W @ Dm).tocsr()

    Y = _onehot(y, n_classes)
    base = (1.0 - alpha) * Y
    F = Y.copy()
    for _ in range(max_iter):
        F_next = alpha * (S @ F) + base
        delta = np.abs(F_next - F).max() if n else 0.0
        F = F_next
        if delta < tol:
            break
    return _normalize_rows(F, class_prior(y, n_classes))


def _tied_argmax_rows(scores: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Per row, a distribution splitting 1 evenly among the top-scoring classes; 0 rows where inactive.

    Ties are split instead of broken by class index so that a principal calling two teams' resources
    equally does not systematically vote for the team with the smaller id.
    """
    top = scores.max(axis=1, keepdims=True) if scores.shape[1] else np.zeros((scores.shape[0], 1))
    eps = 1e-9 * np.maximum(np.abs(top), 1.0)
    is_top = (scores >= top - eps) & active[:, None]
    counts = is_top.sum(axis=1, keepdims=True)
    return is_top / np.maximum(counts, 1)


def role_vote(
    C: sp.spmatrix | sp.sparray,
    y: np.ndarray,
    n_classes: int,
    chunk: int = 200_000,
) -> np.ndarray:
    """The naive "whoever calls it owns it" baseline, with leave-one-out for labelled resources.

    Each principal (IAM role, user...) is assigned the team that owns most of the labelled resources
    it calls, weighted by call counts. A resource is predicted by the call-weighted vote of the
    principals seen on it; principals that call no labelled resource abstain, and a resource with no
    voting principal gets the class prior.

    Without care this leaks: a labelled resource that is the only thing its principal calls would
    vote for its own label through that principal. So, for a labelled resource r, each principal's
    team is recomputed with r's own calls removed (``P[p] - C[r, p] * onehot(y[r])``); a principal
    whose only labelled evidence was r abstains, and r's prior fallback also excludes r's label.
    Predictions for labelled resources are therefore honest held-out estimates.

    ``C`` is (n_resources, n_principals) non-negative call counts. ``chunk`` bounds the memory of the
    leave-one-out step (entries x classes floats per chunk).
    """
    y = _check_labels(y, n_classes)
    n = y.shape[0]
    if not sp.issparse(C):
        raise ValueError("C must be a scipy.sparse matrix")
    if C.shape[0] != n:
        raise ValueError(f"C must have {n} rows (one per resource), got shape {C.shape}")
    C = sp.csr_matrix(C, dtype=np.float64)
    C.sum_duplicates()
    if C.nnz and (not np.all(np.isfinite(C.data)) or C.data.min() < 0):
        raise ValueError("C must hold finite, non-negative call counts")
    C.eliminate_zeros()

    Y = _onehot(y, n_classes)
    P = np.asarray((C.T @ Y), dtype=np.float64)  # (n_principals, K): labelled calls per team
    P_total = P.sum(axis=1)
    T = _tied_argmax_rows(P, P_total > 0)  # each principal's team vote, 0 rows = abstain

    labelled = y >= 0
    # Unlabelled resources: no leakage possible, plain weighted vote.
    scores = np.asarray(C @ T, dtype=np.float64)
    scores[labelled] = 0.0

    # Labelled resources: recompute each principal's team without this resource's own calls.
    coo = C.tocoo()
    sel = labelled[coo.row]
    rows, cols, vals = coo.row[sel], coo.col[sel], coo.data[sel]
    step = max(1, chunk // max(n_classes, 1))
    for start in range(0, rows.size, step):
        r, p, c = rows[start : start + step], cols[start : start + step], vals[start : start + step]
        loo = P[p].copy()
        loo[np.arange(r.size), y[r]] -= c
        remaining = P_total[p] - c
        active = remaining > 1e-9 * np.maximum(P_total[p], 1.0)
        vote = _tied_argmax_rows(loo, active) * c[:, None]
        for k in range(n_classes):
            scores[:, k] += np.bincount(r, weights=vote[:, k], minlength=n)

    prior = class_prior(y, n_classes)
    out = _normalize_rows(scores, prior)
    # A labelled resource with no voters falls back to the prior of the *other* labelled resources.
    sums = scores.sum(axis=1)
    fallback = np.flatnonzero(labelled & ~(sums > 0))
    if fallback.size:
        counts = np.bincount(y[y >= 0], minlength=n_classes).astype(np.float64)
        loo_counts = counts[None, :] - _onehot(y[fallback], n_classes)
        out[fallback] = _normalize_rows(loo_counts, np.full(n_classes, 1.0 / n_classes))
    return out
