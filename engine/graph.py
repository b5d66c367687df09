"""The ownership graph: resources linked through the things that reveal an owner.

Resources never link to each other directly through a shared role or VPC (that is quadratic: a role
used by 5,000 resources would make 12 million edges). Instead roles, people, networks and repos are
nodes of their own, and every edge is a resource–entity fact: ``role X manages resource R``. The
graph is linear in the number of facts, and two message-passing hops still carry "R shares a deployer
with these labelled resources".
"""

from __future__ import annotations

import fnmatch
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from engine.activity import CREATE, MANAGE, USE
from engine.bundle import Bundle
from engine.features import resource_features, standardize

# entity type per relation (all relations point entity -> resource; "flow" is resource -> resource)
RELATIONS: dict[str, str] = {
    CREATE: "actor",
    MANAGE: "actor",
    USE: "actor",
    "deploy": "actor",
    "policy": "actor",
    "subnet": "network",
    "vpc": "network",
    "repo": "repo",
    "flow": "resource",
}

ACTOR_TYPES = ("role", "person", "user", "service", "root", "account", "federated", "unknown", "deployer")


@dataclass
class Relation:
    src: np.ndarray  # entity (or resource) index
    dst: np.ndarray  # resource index
    weight: np.ndarray  # raw evidence strength (calls, bytes, 1 for facts)


@dataclass
class OwnershipGraph:
    resources: list[str]
    index: dict[str, int]
    entities: dict[str, list[str]]  # entity type -> keys
    relations: dict[str, Relation]
    x: np.ndarray  # standardized resource features
    raw_x: np.ndarray
    entity_x: dict[str, np.ndarray] = field(default_factory=dict)
    half_life_days: float = 0.0

    @property
    def n(self) -> int:
        return len(self.resources)

    def size(self, node_type: str) -> int:
        """Number of nodes of a type ("resource", "actor", "network", "repo")."""
        return self.n if node_type == "resource" else len(self.entities.get(node_type, []))

    def role_calls(self) -> tuple[sp.csr_matrix, list[str]]:
        """Resource × role call counts (all relations): input of the naive role-vote baseline."""
        actors = self.entities["actor"]
        keep = np.array([a.startswith("role:") for a in actors], dtype=bool)
        rows, cols, vals = [], [], []
        for name in (CREATE, MANAGE, USE):
            rel = self.relations[name]
            m = keep[rel.src]
            rows.append(rel.dst[m])
            cols.append(rel.src[m])
            vals.append(rel.weight[m])
        C = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.n, len(actors)))
        return C, actors

    def bipartite_adjacency(self) -> sp.csr_matrix:
        """Symmetric adjacency over [resources, actors, networks, repos] for label propagation."""
        offsets, total = {"resource": 0}, self.n
        for t in ("actor", "network", "repo"):
            offsets[t] = total
            total += len(self.entities.get(t, []))
        rows, cols, vals = [], [], []
        for name, rel in self.relations.items():
            if len(rel.src) == 0:
                continue
            src = rel.src + offsets[RELATIONS[name]]
            w = np.log1p(rel.weight).astype(np.float64)
            rows += [src, rel.dst]
            cols += [rel.dst, src]
            vals += [w, w]
        A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(total, total))
        A.sum_duplicates()
        return A


def actor_type(key: str) -> str:
    head = key.split(":", 1)[0]
    return head if head in ACTOR_TYPES else "unknown"


def _policy_matchers(patterns: tuple[str, ...]) -> list[tuple[re.Pattern[str], str] | str]:
    """Exact ARNs as strings, wildcards as (compiled pattern, the glob itself)."""
    out: list[tuple[re.Pattern[str], str] | str] = []
    for p in patterns:
        if p == "*" or not p.startswith("arn:"):
            continue  # a blanket grant says nothing about ownership
        out.append((re.compile(fnmatch.translate(p)), p) if ("*" in p or "?" in p) else p)
    return out


def _glob_hits(matcher: tuple[re.Pattern[str], str], sorted_arns: list[str], index: dict[str, int]) -> Iterator[int]:
    """Indices of the ARNs a policy wildcard matches, looking only at those that share its literal
    prefix (found by bisection): a policy per team times every resource was quadratic at scale."""
    pattern, glob = matcher
    cut = min((i for i in (glob.find("*"), glob.find("?"), glob.find("[")) if i >= 0), default=len(glob))
    prefix = glob[:cut]
    for k in range(bisect_left(sorted_arns, prefix), len(sorted_arns)):
        arn = sorted_arns[k]
        if not arn.startswith(prefix):
            break
        if pattern.match(arn):
            yield index[arn]


def build_graph(bundle: Bundle, arns: list[str] | None = None) -> OwnershipGraph:
    """Turn a loaded bundle into the resource–entity graph plus resource features."""
    resources = arns if arns is not None else sorted(bundle.resources)
    index = {a: i for i, a in enumerate(resources)}
    ent_index: dict[str, dict[str, int]] = {"actor": {}, "network": {}, "repo": {}}

    def ent(t: str, key: str) -> int:
        d = ent_index[t]
        i = d.get(key)
        if i is None:
            i = d[key] = len(d)
        return i

    rel_lists: dict[str, tuple[list[int], list[int], list[float]]] = {k: ([], [], []) for k in RELATIONS}

    def add(rel: str, s: int, d: int, w: float) -> None:
        lst = rel_lists[rel]
        lst[0].append(s)
        lst[1].append(d)
        lst[2].append(w)

    # Recency: what a team did lately outweighs what another did weeks ago (reassigned resources).
    period = bundle.period or (0.0, 0.0)
    span = max(86400.0, period[1] - period[0])
    half_life = span / 4
    act = bundle.activity
    def decay(t: float | None) -> float:
        return 0.5 ** ((period[1] - t) / half_life) if t is not None else 0.5

    for (arn, actor, rel), ps in act.pairs.items():
        r = index.get(arn)
        if r is not None:
            add(rel, ent("actor", actor), r, ps.count * decay(ps.mean_time))
    for d in bundle.deploys:
        who = d.actor
        if not who:
            continue
        key = next((k for k in (f"role:{who}", f"person:{who}", f"user:{who}") if k in ent_index["actor"]),
                   f"deployer:{who}")
        for arn in d.resources:
            r = index.get(arn)
            if r is not None:
                add("deploy", ent("actor", key), r, decay(d.time))
                add("repo", ent("repo", d.repo), r, decay(d.time))
    sorted_arns = sorted(index)
    for p in bundle.principals.values():
        matchers = _policy_matchers(p.policy_resources)
        if not matchers:
            continue
        a = ent("actor", p.key)
        exact = [m for m in matchers if isinstance(m, str)]
        for arn in exact:
            r = index.get(arn)
            if r is not None:
                add("policy", a, r, 1.0)
        hits: set[int] = set()
        for m in matchers:
            if not isinstance(m, str):
                hits.update(_glob_hits(m, sorted_arns, index))
        for r in sorted(hits):
            add("policy", a, r, 1.0)
    for itf in bundle.interfaces:
        r = index.get(itf.resource) if itf.resource else None
        if r is None:
            continue
        if itf.subnet_id:
            add("subnet", ent("network", f"subnet:{itf.subnet_id}"), r, 1.0)
        if itf.vpc_id:
            add("vpc", ent("network", f"vpc:{itf.vpc_id}"), r, 1.0)
    for (a, b), v in bundle.flows.items():
        ia, ib = index.get(a), index.get(b)
        if ia is not None and ib is not None:
            add("flow", ia, ib, v)
            add("flow", ib, ia, v)

    relations = {
        k: Relation(np.asarray(s, dtype=np.int64), np.asarray(d, dtype=np.int64), np.asarray(w, dtype=np.float32))
        for k, (s, d, w) in rel_lists.items()
    }
    # Several identical facts (one role managing through many events) collapse into one weighted edge.
    for k, rel in relations.items():
        if len(rel.src) == 0:
            continue
        n_src = max(int(rel.src.max()) + 1, 1)
        m = sp.coo_matrix((rel.weight, (rel.dst, rel.src)), shape=(len(resources), n_src)).tocsr()
        m.sum_duplicates()
        coo = m.tocoo()
        relations[k] = Relation(coo.col.astype(np.int64), coo.row.astype(np.int64), coo.data.astype(np.float32))

    entities = {t: list(d) for t, d in ent_index.items()}
    raw_x = resource_features(bundle, resources)
    entity_x: dict[str, np.ndarray] = {}
    home = {r.account for r in bundle.resources.values() if r.account}
    actors = entities["actor"]
    ax = np.zeros((len(actors), len(ACTOR_TYPES) + 2), dtype=np.float32)
    deg = np.zeros(len(actors), dtype=np.float32)
    for name in (CREATE, MANAGE, USE, "deploy", "policy"):
        np.add.at(deg, relations[name].src, 1.0)
    for i, a in enumerate(actors):
        ax[i, ACTOR_TYPES.index(actor_type(a))] = 1.0
        acct = act.actor_accounts.get(a)
        ax[i, len(ACTOR_TYPES)] = 1.0 if (acct and home and acct not in home) else 0.0
    ax[:, -1] = np.log1p(deg) / 5
    entity_x["actor"] = ax
    nets = entities["network"]
    nx_ = np.zeros((len(nets), 2), dtype=np.float32)
    for i, k in enumerate(nets):
        nx_[i, 0 if k.startswith("subnet:") else 1] = 1.0
    entity_x["network"] = nx_
    entity_x["repo"] = np.ones((len(entities["repo"]), 1), dtype=np.float32)
    return OwnershipGraph(resources=resources, index=index, entities=entities, relations=relations,
                          x=standardize(raw_x), raw_x=raw_x, entity_x=entity_x, half_life_days=half_life / 86400)
