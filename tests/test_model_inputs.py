"""The model's inputs are finite, or it says which resource is not (issue 8, point 2).

A CUR line item of -5000 (a credit, a correction) once made ``log1p`` of the resource's monthly cost
NaN; standardisation spread it to every resource, training never saw a finite validation loss and
``load_state_dict(None)`` died with a torch traceback. Features are now finite for zero, negative and
non-finite spend, ``fit_predict`` names the resource and feature of any non-finite input, and a
training run that diverges keeps its best state or says so plainly.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from pathlib import Path

import numpy as np
import pytest

from engine.features import FEATURE_NAMES, _cost_stats, resource_features
from engine.graph import build_graph
from engine.model import ModelInputError, _diverged, check_inputs, fit_predict
from engine.scan import owner_labels, scan_bundle
from engine.tagrules import TagRules


@pytest.mark.parametrize("series", [
    np.array([-5000.0, 1.0, 2.0]),
    np.array([-1.0, -1.0, -1.0]),
    np.array([0.0, 0.0, 0.0]),
    np.array([5.0, -5.0]),
    np.array([1.0, np.nan, 2.0]),
    np.array([np.inf, 1.0, -np.inf]),
    np.array([np.nan, np.nan]),
    np.array([-3.0]),
])
def test_cost_stats_are_finite_for_any_spend(series: np.ndarray) -> None:
    stats = _cost_stats(series)
    assert len(stats) == 4
    assert all(np.isfinite(v) for v in stats), stats


def test_cost_stats_keep_the_sign_and_match_positive_spend() -> None:
    pos = _cost_stats(np.array([1.0, 2.0, 3.0]))
    neg = _cost_stats(np.array([-1.0, -2.0, -3.0]))
    assert pos[0] == pytest.approx(np.log1p(2.0 * 30))  # unchanged for ordinary spend
    assert neg[0] == pytest.approx(-pos[0])  # a net credit: negative, same magnitude
    assert _cost_stats(np.array([1.0, np.nan, 3.0]))[0] == pytest.approx(np.log1p(30 * 4 / 3))


def _graph(bundle):
    arns = sorted(bundle.resources)
    classes, y, _ = owner_labels(bundle, arns, TagRules.default())
    return build_graph(bundle, arns), y, classes


def test_fit_predict_names_the_resource_and_feature_that_is_not_finite(tiny_bundle, fast_model_config) -> None:
    graph, y, classes = _graph(tiny_bundle)
    check_inputs(graph)  # the real graph is fine
    col = FEATURE_NAMES.index("log_monthly_cost")
    raw = graph.raw_x.copy()
    raw[7, col] = np.nan
    bad = dataclasses.replace(graph, raw_x=raw)
    with pytest.raises(ModelInputError) as err:
        fit_predict(bad, y, classes, fast_model_config)
    msg = str(err.value)
    assert graph.resources[7] in msg
    assert "log_monthly_cost" in msg
    assert isinstance(err.value, ValueError)  # the CLI turns ValueErrors into one `error:` line


def test_fit_predict_names_a_non_finite_link_weight(tiny_bundle, fast_model_config) -> None:
    graph, y, classes = _graph(tiny_bundle)
    name = next(n for n, r in graph.relations.items() if len(r.src))
    rel = graph.relations[name]
    w = rel.weight.copy()
    w[0] = np.inf
    bad = dataclasses.replace(graph, relations={**graph.relations, name: dataclasses.replace(rel, weight=w)})
    with pytest.raises(ModelInputError, match=graph.resources[int(rel.dst[0])]):
        fit_predict(bad, y, classes, fast_model_config)


def test_training_that_diverges_says_so_instead_of_loading_no_state(tiny_bundle, fast_model_config) -> None:
    graph, y, classes = _graph(tiny_bundle)
    # finite, so the input check passes, but large enough to overflow float32 in the first layer
    huge = dataclasses.replace(graph, x=np.full_like(graph.x, 3e38))
    with pytest.raises(ModelInputError, match="diverged"):
        fit_predict(huge, y, classes, fast_model_config)


def test_divergence_after_a_good_epoch_keeps_the_best_state() -> None:
    with pytest.warns(RuntimeWarning, match="keeping epoch 3"):
        _diverged((0.5, {"w": 1}, 2), 0, 9, "validation")
    with pytest.raises(ModelInputError, match="fold 2"):
        _diverged((np.inf, None, 0), 1, 0, "validation")


# -- the reported bundle: one CUR line item of -5000 (and one of NaN) --------------------------------

def _edit_cur(bundle: Path, edits: dict[int, str]) -> dict[int, str]:
    """Set line_item_unblended_cost on the given data rows of the first CUR file; returns row -> resource id."""
    path = sorted((bundle / "cost").rglob("*.csv.gz"))[0]
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    cost, res = head.index("line_item_unblended_cost"), head.index("line_item_resource_id")
    touched = {}
    for i, value in edits.items():
        # the i-th data row that names a resource
        row = [r for r in rows[1:] if r[res]][i]
        row[cost] = value
        touched[i] = row[res]
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    with gzip.open(path, "wt", newline="") as fh:
        fh.write(buf.getvalue())
    return touched


@pytest.fixture(scope="module")
def small_org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.synth import generate

    out = tmp_path_factory.mktemp("neg_org")
    generate(out, seed=0, teams=4, resources_per_team=10, days=7, workers=1)
    return out


def test_a_negative_line_item_scans_with_a_prediction_for_every_resource(
        small_org: Path, tmp_path: Path, fast_model_config, torch_one_thread) -> None:
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(small_org / "bundle", bundle)
    touched = _edit_cur(bundle, {10: "-5000", 20: "NaN"})
    result = scan_bundle(bundle, config=fast_model_config, workers=1)
    assert result.prediction is not None
    assert np.isfinite(result.prediction.proba).all()
    assert np.isfinite(result.graph.raw_x).all() and np.isfinite(result.graph.x).all()
    assert len(result.rows) == len(result.bundle.resources)
    by_id = {r.resource_id: r for r in result.rows}
    by_arn = result.by_arn()
    for rid in touched.values():
        row = by_arn.get(rid) or by_id.get(rid) or next(r for r in result.rows if r.arn.endswith(rid))
        assert 0.0 < row.confidence <= 1.0
    # every resource got a prediction: a calibrated confidence and a team, or "fits no team" by anomaly
    for r in result.rows:
        assert 0.0 < r.confidence <= 1.0
        assert r.predicted_team or r.anomaly_score >= 0.4


def test_features_of_the_negative_bundle_are_finite(small_org: Path, tmp_path: Path) -> None:
    import shutil

    from engine.bundle import load_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(small_org / "bundle", bundle)
    _edit_cur(bundle, {10: "-5000"})
    b = load_bundle(bundle, workers=1)
    X = resource_features(b, sorted(b.resources))
    assert np.isfinite(X).all()
    assert (X[:, FEATURE_NAMES.index("log_monthly_cost")] < 0).any()  # the credit shows as negative spend
