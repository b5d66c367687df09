"""GraphSAGE over the ownership graph, with labels as inputs and calibrated confidence.

Why these choices:
- *Heterogeneous GraphSAGE* (one SAGEConv per relation): "role X manages R" and "role X reads R" say
  different things about ownership; a per-relation weight lets the model learn that the minority
  caller who deploys a shared service owns it.
- *Weighted mean aggregation*: each relation's neighbours are averaged with weights from call counts
  (recency-weighted), passed as a sparse adjacency to SAGEConv with ``aggr="sum"``.
- *Labels as inputs* (the "label trick"): every role, person, subnet and repo gets as input the team
  profile of the labelled resources it touches — from half of the labels each epoch, the other half
  being what is predicted — so a resource never sees its own label.
- *A label-propagation residual*: the logits start from each relation's call-share-weighted vote of
  its entities' (sharpened) team profiles, mixed across relations by a learned attention on evidence
  mass (weeks-old deploys weigh less than today's calls). The GraphSAGE layers learn what that misses.
- *K-fold ensemble*: every labelled resource also gets a prediction from a model that never saw its
  label — that is what flags a tag that disagrees with behaviour, and what temperature scaling fits on
  (jointly with the rate of wrong tags, so stale tags do not make every prediction timid).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.calibration import apply_temperature, fit_temperature
from engine.graph import RELATIONS, OwnershipGraph


@dataclass
class ModelConfig:
    hidden: int | None = None  # None: sized from the number of labels
    dropout: float = 0.3
    lr: float = 0.02
    weight_decay: float = 5e-4
    max_epochs: int = 200
    patience: int = 8
    min_epochs: int = 20
    min_delta: float = 0.01  # relative: validation loss must improve by 1% to count
    folds: int = 5  # 3 when there are many labels: each fold already sees thousands
    large: int = 500  # labels above which the cheaper settings apply
    input_label_rate: float = 0.5  # share of training labels shown as inputs each epoch
    seed: int = 0
    threads: int | None = None


@dataclass
class Prediction:
    classes: list[str]
    proba: np.ndarray  # (n, k) calibrated
    logits: np.ndarray  # (n, k) ensemble logits before temperature
    out_of_fold: np.ndarray  # bool (n,): labelled rows whose prediction comes from a model blind to their label
    embeddings: np.ndarray  # (n, hidden)
    temperature: float
    evidence: np.ndarray  # (n,) share of a resource's links that point at team-specific entities
    anomaly: np.ndarray  # (n,) 0..1, high = fits no team
    oof_accuracy: float  # accuracy of out-of-fold predictions against the labels
    epochs: list[int]

    @property
    def confidence(self) -> np.ndarray:
        return self.proba.max(axis=1)

    @property
    def predicted(self) -> np.ndarray:
        return self.proba.argmax(axis=1)


def _hidden_size(n_labels: int, cfg: ModelConfig) -> int:
    if cfg.hidden:
        return cfg.hidden
    return int(np.clip(4 * np.sqrt(max(n_labels, 1)), 16, 64))


SHARPEN = 4.0
# How loud the label-propagation prior speaks next to the GraphSAGE logits. With few labels the hidden
# path overfits patterns such as "every team calls it and it is a bucket -> platform"; a louder prior
# keeps "most calls come from this team's roles" decisive where the labels cannot tell the two apart
# (at 10 rather than 5, the external benchmark's shared services went from 3 of 5 seeds to 4 of 5 and
# ours stay >= 90% per kind; at 15 the raw logits are so well calibrated on small orgs that temperature
# scaling has nothing left to fix, and our reassigned kind drops toward 89%).
PRIOR_SCALE = 10.0
# Where the relation weights start (log scale) and are pulled back to unless labels insist: running a
# resource (admin calls, deploys) says most about who owns it; a broad IAM policy or a VPC shared by
# several teams says least. Traffic (use, flows) sits in between: consumers of a shared service call it
# far more than its owner does.
RELATION_PRIOR = {"manage": 1.0, "deploy": 1.0, "create": 0.5, "repo": 0.5, "use": 0.0, "flow": 0.0,
                  "subnet": -0.5, "vpc": -1.0, "policy": -1.0}
GATE_A0 = 0.5  # how strongly a relation's weight follows its (recency-decayed) evidence mass, by default
PRIOR_REG = 0.1  # pull toward RELATION_PRIOR; labels must earn a deviation


def _norm_adj(dst: np.ndarray, src: np.ndarray, w: np.ndarray, n_dst: int, n_src: int, log: bool = False):
    """Row-normalised sparse adjacency [n_dst, n_src] (a weighted mean over neighbours).

    Into a resource, neighbours weigh by their share of the calls (the plurality caller of a shared
    bucket matters); into an entity, resources weigh by log calls so one hot resource does not
    define a role's whole profile.
    """
    import torch

    w = np.log1p(w.astype(np.float64)) if log else w.astype(np.float64)
    tot = np.bincount(dst, weights=w, minlength=n_dst)
    vals = w / np.where(tot[dst] > 0, tot[dst], 1.0)
    idx = torch.from_numpy(np.vstack([dst, src]))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(vals.astype(np.float32)), (n_dst, n_src)).coalesce().to_sparse_csr()


def _tensors(graph: OwnershipGraph):
    """Node feature tensors and per-relation adjacencies (both directions) for HeteroConv."""
    import torch

    x = {"resource": torch.from_numpy(graph.x)}
    for t, arr in graph.entity_x.items():
        if graph.size(t):
            x[t] = torch.from_numpy(arr)
    adj = {}
    for name in relation_names(graph):
        rel, src_t = graph.relations[name], RELATIONS[name]
        n_src = graph.size(src_t)
        adj[(src_t, name, "resource")] = _norm_adj(rel.dst, rel.src, rel.weight, graph.n, n_src, log=name == "flow")
        if src_t != "resource":
            adj[("resource", f"rev_{name}", src_t)] = _norm_adj(rel.src, rel.dst, rel.weight, n_src, graph.n, log=True)
    return x, adj


def _build_net(edge_types, node_types, hidden: int, n_classes: int, dropout: float, theta0: list[float]):
    import torch
    from torch import nn
    from torch_geometric.nn import HeteroConv, SAGEConv

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            n_props = len(theta0)
            # SAGEConv's root weight lives once per node type (``root1``/``root2``), not once per
            # relation: nine relations into a resource would otherwise apply nine root projections.
            self.conv1 = HeteroConv({et: SAGEConv((-1, -1), hidden, aggr="sum", root_weight=False)
                                     for et in edge_types}, aggr="sum")
            into_res = [et for et in edge_types if et[2] == "resource"]
            self.conv2 = HeteroConv({et: SAGEConv((-1, -1), hidden, aggr="sum", root_weight=False)
                                     for et in into_res}, aggr="sum")
            self.root1 = nn.ModuleDict({t: nn.LazyLinear(hidden) for t in node_types})
            self.root2 = nn.Linear(hidden, hidden)
            self.skip = nn.LazyLinear(hidden)
            self.out = nn.Linear(hidden, n_classes)
            self.register_buffer("theta0", torch.tensor(theta0, dtype=torch.float32))
            self.theta = nn.Parameter(self.theta0.clone())  # log-weight of each relation's propagated labels
            self.gate_a = nn.Parameter(torch.full((n_props,), GATE_A0))  # how much evidence mass matters, per relation
            self.gate_b = nn.Parameter(torch.zeros(n_props))  # and each relation's standing
            self.dropout = dropout
            self.hidden_gate = nn.Parameter(torch.tensor(0.0))  # log-scale of the GraphSAGE logits

        def embed(self, x: dict, adj: dict) -> torch.Tensor:
            x = {t: v for t, v in x.items() if not t.startswith("_")}
            h = self.conv1(x, adj)
            h = {t: (h[t] + self.root1[t](x[t])) if t in h else self.root1[t](x[t]) for t in x}
            h = {k: nn.functional.dropout(v.relu(), self.dropout, self.training) for k, v in h.items()}
            z = self.conv2(h, adj)["resource"] + self.root2(h["resource"]) + self.skip(x["resource"])
            return z.relu()

        def prior_penalty(self) -> torch.Tensor:
            """Keep the relation weighting near RELATION_PRIOR unless the labels insist, and make the
            GraphSAGE logits earn their share (with few labels they overfit)."""
            return (((self.theta - self.theta0) ** 2).sum() + (self.gate_b**2).sum()
                    + ((self.gate_a - GATE_A0) ** 2).sum() + self.hidden_gate.exp())

        def forward(self, x: dict, adj: dict) -> torch.Tensor:
            z = self.embed(x, adj)
            # attention over relations by evidence mass: a softmax across the relations a resource has
            lm = x["_mass"]
            score = torch.where(torch.isfinite(lm), self.gate_a[:, None] * lm.clamp(min=-20) + self.gate_b[:, None],
                                torch.full_like(lm, -1e9))
            gate = torch.softmax(score, dim=0) * torch.isfinite(lm).any(dim=0, keepdim=True)
            prior = torch.einsum("r,rn,rnk->nk", PRIOR_SCALE * self.theta.exp(), gate, x["_prop"])
            return self.hidden_gate.exp() * self.out(nn.functional.dropout(z, self.dropout, self.training)) + prior

    return Net()


class LabelInputs:
    """Known owners as node inputs: each entity's team distribution over its visible labelled resources.

    Per relation, an entity (role, person, subnet, repo; or a flow peer for resources) gets the
    weighted share of each team among the labelled resources it is linked to, plus how much labelled
    evidence that share rests on. Only labels in the ``visible`` mask count, so a resource whose label
    is being predicted never sees itself. Computed without gradients: it is data, not a parameter.
    """

    def __init__(self, graph: OwnershipGraph, y: np.ndarray, k: int):
        import scipy.sparse as sp

        self.y, self.k, self.n = y, k, graph.n
        self.mats: dict[str, list] = {}
        self.props: list[tuple[sp.csr_matrix, sp.csr_matrix]] = []  # (entity x resource, resource x entity)
        masses = []
        for name in relation_names(graph):
            rel = graph.relations[name]
            src_t = RELATIONS[name]
            n_src = graph.size(src_t)
            # An entity's team profile weighs its resources by its calls on them: a role spends most
            # of its calls on its own team's resources, however many others it also touches.
            w = np.log1p(rel.weight.astype(np.float64)) if name == "flow" else rel.weight.astype(np.float64)
            m = sp.csr_matrix((w, (rel.src, rel.dst)), shape=(n_src, graph.n))
            self.mats.setdefault(src_t, []).append(m)
            share = w
            tot = np.bincount(rel.dst, weights=share, minlength=graph.n)
            r = sp.csr_matrix((share / np.maximum(tot[rel.dst], 1e-12), (rel.dst, rel.src)), shape=(graph.n, n_src))
            self.props.append((m, r))
            masses.append(tot)
        # log evidence mass per relation and resource (-inf where the relation has no link): the model
        # weighs relations against each other by it, so weeks-old deploys count less than today's calls
        mass = np.stack(masses) if masses else np.zeros((0, graph.n))
        self.log_mass = np.where(mass > 0, np.log(np.maximum(mass, 1e-12)), -np.inf).astype(np.float32)

    def __call__(self, visible: np.ndarray) -> dict:
        import torch

        Y = np.zeros((self.n, self.k + 1))
        idx = np.flatnonzero(visible)
        Y[idx, self.y[idx]] = 1.0
        Y[idx, self.k] = 1.0
        out = {}
        for t, mats in self.mats.items():
            blocks = []
            for m in mats:
                agg = m @ Y
                support = agg[:, self.k:]
                dist = agg[:, : self.k] / np.maximum(support, 1e-12)
                blocks += [_sharpen(dist), np.log1p(support)]
            out[t] = torch.from_numpy(np.hstack(blocks).astype(np.float32))
        # Two hops of plain label propagation per relation, weighted by call share: the model adds a
        # learned multiple of these to its logits, so "most calls come from team A's roles" is a prior
        # it starts from rather than a pattern it has to rediscover through the hidden layers.
        prop = []
        for m, r in self.props:
            agg = m @ Y
            dist = agg[:, : self.k] / np.maximum(agg[:, self.k:], 1e-12)
            # "Each role belongs to one team": sharpen the entity's profile so its majority team gets
            # nearly all of its vote (a role that spends 70% of its calls on team A's resources speaks
            # for A), while an org-wide principal with an even spread stays spread and says little.
            prop.append(r @ _sharpen(dist))
        out["_prop"] = torch.from_numpy(np.stack(prop).astype(np.float32))
        out["_mass"] = torch.from_numpy(self.log_mass)
        return out


def _sharpen(dist: np.ndarray) -> np.ndarray:
    """Raise a team profile to SHARPEN and renormalise: the majority team takes nearly all of it."""
    sharp = dist**SHARPEN
    return sharp / np.maximum(sharp.sum(axis=1, keepdims=True), 1e-12)


def _inputs(x: dict, labels: dict) -> dict:
    import torch

    out = {t: torch.cat([v, labels[t]], dim=1) if t in labels else v for t, v in x.items()}
    out["_prop"] = labels["_prop"]
    out["_mass"] = labels["_mass"]
    return out


def relation_names(graph: OwnershipGraph) -> list[str]:
    """Relations with at least one edge and a non-empty source type, in a fixed order."""
    return [n for n, rel in graph.relations.items() if len(rel.src) and graph.size(RELATIONS[n])]


def _evidence(graph: OwnershipGraph, y: np.ndarray, k: int) -> np.ndarray:
    """How much of each resource's evidence points at team-specific entities (0..1).

    An entity (role, person, subnet, repo, flow peer) is team-specific when the labelled resources it
    touches mostly share one team. A vendor bucket read only by an external role, or a forgotten
    volume touched only by the org-wide backup job, has none.
    """
    n = graph.n
    labelled = y >= 0
    num = np.zeros(n)
    den = np.zeros(n)
    for name, rel in graph.relations.items():
        if len(rel.src) == 0:
            continue
        src_t = RELATIONS[name]
        n_src = graph.size(src_t)
        w = np.log1p(rel.weight.astype(np.float64))
        m = labelled[rel.dst]
        dist = np.zeros((n_src, k))
        np.add.at(dist, (rel.src[m], y[rel.dst[m]]), w[m])
        # leave-one-out: a resource's own label must not make its own entities look specific. Per
        # edge that means the entity's profile minus the resource's own weight on its own class;
        # from each entity's best, runner-up and total it costs O(edges), not O(edges x teams).
        order = np.argsort(dist, axis=1)
        top, second = order[:, -1], order[:, -2] if k > 1 else order[:, -1]
        rows = np.arange(n_src)
        best, runner, tot = dist[rows, top], dist[rows, second], dist.sum(axis=1)
        s = rel.src
        own = np.where(m, w, 0.0)
        own_class = np.where(m, y[rel.dst], -1)
        own_val = np.where(m, dist[s, np.maximum(own_class, 0)] - own, 0.0)
        e_max = np.where(m & (own_class == top[s]), np.maximum(runner[s], own_val), best[s])
        e_tot = tot[s] - own
        share = np.where(e_tot > 1e-9, e_max / np.maximum(e_tot, 1e-12), 0.0)
        support = np.minimum(1.0, e_tot / (2 * np.log1p(1.0)))
        spec = np.clip((share - 1.0 / k) / (1 - 1.0 / k), 0, 1) * support if k > 1 else support
        np.add.at(num, rel.dst, w * spec)
        np.add.at(den, rel.dst, w)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)


class ModelInputError(ValueError):
    """The model's inputs are not usable (a feature or an edge weight that is not a finite number)."""


def _first_bad(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the non-finite cells of a 2-D array (row-major order)."""
    return np.nonzero(~np.isfinite(a))


def check_inputs(graph: OwnershipGraph) -> None:
    """Raise ``ModelInputError`` naming the resource (its ARN) and the feature that is not finite.

    A NaN or an infinity anywhere in the inputs spreads through standardisation and message passing
    to every resource's logits; training then never sees a finite validation loss. Say where it is.
    """
    from engine.features import FEATURE_NAMES

    def fail(what: str, rows: np.ndarray, where: Callable[[int], str]) -> None:
        more = len(np.unique(rows)) - 1
        raise ModelInputError(f"{what} of {where(int(rows[0]))} is not a finite number"
                              + (f" (and {more} more)" if more > 0 else "")
                              + "; check that resource's cost and activity lines in the bundle")

    for label, arr in (("feature", graph.raw_x), ("standardized feature", graph.x)):
        if arr is None or arr.size == 0:
            continue
        rows, cols = _first_bad(np.asarray(arr))
        if len(rows):
            c = int(cols[0])
            name = FEATURE_NAMES[c] if arr.shape[1] == len(FEATURE_NAMES) else f"#{c}"
            fail(f"{label} {name!r} (value {arr[rows[0], c]})", rows, lambda i: f"resource {graph.resources[i]}")
    for t, arr in graph.entity_x.items():
        if arr.size:
            rows, cols = _first_bad(np.asarray(arr))
            if len(rows):
                keys = graph.entities.get(t, [])
                fail(f"{t} feature #{int(cols[0])}", rows,
                     lambda i, keys=keys, t=t: f"{t} {keys[i] if i < len(keys) else i}")
    for name, rel in graph.relations.items():
        if len(rel.weight):
            w = np.asarray(rel.weight, dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
            if len(bad):
                src_keys = graph.resources if RELATIONS[name] == "resource" else graph.entities.get(RELATIONS[name], [])
                j = int(bad[0])
                s_i = int(rel.src[j])
                src = src_keys[s_i] if s_i < len(src_keys) else str(s_i)
                raise ModelInputError(
                    f"{name!r} link weight {rel.weight[j]} between {src} and resource "
                    f"{graph.resources[int(rel.dst[j])]} is not a finite, non-negative number"
                    + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))


def fit_predict(
    graph: OwnershipGraph,
    y: np.ndarray,
    classes: list[str],
    cfg: ModelConfig | None = None,
    progress: Callable[[float], None] | None = None,
) -> Prediction:
    """Train the fold ensemble on labels ``y`` (class index, -1 = unknown) and predict every resource."""
    import torch

    cfg = cfg or ModelConfig()
    # Small graphs train faster on one thread (and do not fight other processes for the cores).
    threads = cfg.threads or (1 if graph.n < 20_000 else None)
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _fit_predict(graph, y, classes, cfg, progress)
    finally:
        torch.set_num_threads(prev_threads)


def _fit_predict(graph: OwnershipGraph, y: np.ndarray, classes: list[str], cfg: ModelConfig,
                 progress: Callable[[float], None] | None) -> Prediction:
    import torch
    from sklearn.model_selection import KFold, StratifiedKFold

    warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")
    warnings.filterwarnings("ignore", message="There exist node types")
    k = len(classes)
    n = graph.n
    y = np.asarray(y, dtype=np.int64)
    labelled = np.flatnonzero(y >= 0)
    if k < 2 or len(labelled) < 4:
        raise ValueError(f"need at least 2 teams and 4 labelled resources to learn owners (have {k} teams, "
                         f"{len(labelled)} labels)")
    check_inputs(graph)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    hidden = _hidden_size(len(labelled), cfg)
    x, adj = _tensors(graph)
    label_inputs = LabelInputs(graph, y, k)
    counts = np.bincount(y[labelled], minlength=k).astype(np.float64)
    class_w = torch.tensor(np.where(counts > 0, len(labelled) / (k * np.maximum(counts, 1)), 0.0), dtype=torch.float32)
    y_t = torch.from_numpy(np.where(y >= 0, y, 0))

    # Thousands of labels make each fold's model good on its own: fewer folds, same blind-to-own-label
    # guarantee for the out-of-fold predictions.
    n_folds = cfg.folds if len(labelled) <= cfg.large else min(cfg.folds, 3 if len(labelled) <= 10 * cfg.large else 2)
    folds = max(2, min(n_folds, int(counts[counts > 0].min()) if (counts > 0).all() else n_folds, len(labelled)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            splits = list(StratifiedKFold(folds, shuffle=True, random_state=cfg.seed).split(labelled, y[labelled]))
        except ValueError:
            splits = list(KFold(folds, shuffle=True, random_state=cfg.seed).split(labelled))

    # With many labels every epoch sees thousands of targets: the loss settles in fewer epochs.
    min_epochs, patience = ((cfg.min_epochs, cfg.patience) if len(labelled) <= cfg.large
                            else (cfg.min_epochs // 2, max(4, cfg.patience // 2)))
    logits_sum = np.zeros((n, k))
    oof_logits = np.zeros((n, k))
    oof = np.zeros(n, dtype=bool)
    emb = None
    epochs_run: list[int] = []
    for f, (tr_pos, ho_pos) in enumerate(splits):
        tr, ho = labelled[tr_pos], labelled[ho_pos]
        theta0 = [RELATION_PRIOR.get(r, 0.0) for r in relation_names(graph)]
        net = _build_net(list(adj), list(x), hidden, k, cfg.dropout, theta0)
        vis_all = np.zeros(n, dtype=bool)
        vis_all[tr] = True
        with torch.no_grad():
            net(_inputs(x, label_inputs(vis_all)), adj)  # initialise lazy layers
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best = (np.inf, None, 0)
        ho_t = torch.from_numpy(ho)
        eval_x = _inputs(x, label_inputs(vis_all))
        for epoch in range(cfg.max_epochs):
            net.train()
            perm = rng.permutation(tr)
            n_in = int(len(perm) * cfg.input_label_rate)
            vis = np.zeros(n, dtype=bool)
            vis[perm[:n_in]] = True
            tgt = torch.from_numpy(perm[n_in:])
            out = net(_inputs(x, label_inputs(vis)), adj)
            loss = torch.nn.functional.cross_entropy(out[tgt], y_t[tgt], weight=class_w) + PRIOR_REG * net.prior_penalty()
            if not torch.isfinite(loss):
                _diverged(best, f, epoch, "training")
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.eval()
            with torch.no_grad():
                val = torch.nn.functional.cross_entropy(net(eval_x, adj)[ho_t], y_t[ho_t]).item()
            if not np.isfinite(val):
                _diverged(best, f, epoch, "validation")
                break
            if val < best[0] * (1 - cfg.min_delta):
                best = (val, {kk: v.clone() for kk, v in net.state_dict().items()}, epoch)
            elif epoch - best[2] >= patience and epoch >= min_epochs:
                break
        epochs_run.append(epoch + 1)
        net.load_state_dict(best[1])
        net.eval()
        with torch.no_grad():
            lg = net(eval_x, adj).numpy().astype(np.float64)
            if emb is None:
                emb = net.embed(eval_x, adj).numpy()
        oof_logits[ho] = lg[ho]
        oof[ho] = True
        logits_sum += lg
        if progress:
            progress((f + 1) / len(splits))

    logits = logits_sum / len(splits)
    logits[oof] = oof_logits[oof]  # labelled rows: the model that never saw the label speaks
    # Fit the temperature on out-of-fold predictions against the tags, allowing for the few tags that
    # are plainly wrong (stale, copy-pasted): they are label noise, not miscalibration.
    oof_idx = np.flatnonzero(oof)
    temperature = fit_temperature(logits[oof_idx], y[oof_idx], label_noise=True)
    proba = apply_temperature(logits, temperature)
    oof_acc = float((proba[oof_idx].argmax(axis=1) == y[oof_idx]).mean())

    evidence = _evidence(graph, y, k)
    anomaly = _anomaly(emb, y, evidence)
    return Prediction(classes=list(classes), proba=proba, logits=logits, out_of_fold=oof, embeddings=emb,
                      temperature=float(temperature), evidence=evidence, anomaly=anomaly,
                      oof_accuracy=oof_acc, epochs=epochs_run)


def _diverged(best: tuple, fold: int, epoch: int, which: str) -> None:
    """A loss went NaN or infinite: keep the best state so far (early stopping), or say so plainly.

    Inputs are checked before training (``check_inputs``), so this is the optimiser running away,
    not bad data; a fold must never end without a state to predict with.
    """
    if best[1] is None:
        raise ModelInputError(f"model training diverged: the {which} loss is not finite in fold {fold + 1} at "
                              f"epoch {epoch + 1}, before any usable model was saved; try a lower learning rate")
    warnings.warn(f"model fold {fold + 1}: {which} loss not finite at epoch {epoch + 1}; keeping epoch "
                  f"{best[2] + 1}", RuntimeWarning, stacklevel=2)


def _anomaly(emb: np.ndarray, y: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """0..1: half "no team-specific evidence", half "far from every team's embedding centroid"."""
    lab = np.flatnonzero(y >= 0)
    dist_score = np.zeros(len(y))
    if len(lab):
        cents, scales = [], []
        for c in np.unique(y[lab]):
            members = emb[lab[y[lab] == c]]
            mu = members.mean(axis=0)
            d = np.linalg.norm(members - mu, axis=1)
            cents.append(mu)
            scales.append(max(float(np.quantile(d, 0.9)), 1e-6))
        C = np.stack(cents)
        # |e - c|^2 = |e|^2 + |c|^2 - 2 e.c: no (resources x teams x hidden) temporary
        sq = (emb**2).sum(1)[:, None] + (C**2).sum(1)[None, :] - 2 * emb @ C.T
        d_all = np.sqrt(np.maximum(sq, 0.0)) / np.asarray(scales)[None, :]
        ratio = d_all.min(axis=1)
        dist_score = np.clip((ratio - 1.0) / 2.0, 0, 1)
    return 0.5 * (1 - np.clip(evidence, 0, 1)) + 0.5 * dist_score
