"""Why a resource looks like it belongs to a team: the strongest facts behind each prediction.

A "who owns this?" card shows the people and roles that create, manage and use a resource, who
deploys it from which repository, its network, and the resources it talks to. All of it is read off
the ownership graph (``engine.graph``) in one pass per relation, so every resource of a 20,000-resource
scan gets its evidence in well under a second.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from engine.graph import OwnershipGraph

# relation -> key in the evidence dict
FIELDS = {"create": "created_by", "manage": "managed_by", "use": "used_by", "deploy": "deployed_by",
          "repo": "repos", "subnet": "subnets", "vpc": "vpcs", "flow": "talks_to", "policy": "allowed_by"}


def _top_per_row(m: sp.csr_matrix, k: int) -> list[list[tuple[int, float]]]:
    out: list[list[tuple[int, float]]] = []
    indptr, indices, data = m.indptr, m.indices, m.data
    for i in range(m.shape[0]):
        lo, hi = indptr[i], indptr[i + 1]
        if lo == hi:
            out.append([])
            continue
        w = data[lo:hi]
        order = np.argsort(-w, kind="stable")[:k]
        out.append([(int(indices[lo + j]), float(w[j])) for j in order])
    return out


def owner_evidence(graph: OwnershipGraph, top: int = 3) -> list[dict[str, list[list]]]:
    """Per resource (in ``graph.resources`` order): ``{field: [[entity, weight], ...]}`` strongest first.

    Weights are the graph's own (recency-decayed calls for CloudTrail relations, bytes for flows, 1
    for facts such as an IAM policy). ``people`` lists the humans among the actors (SSO sessions and
    IAM users), the evidence people recognise first.
    """
    n = graph.n
    ev: list[dict[str, list[list]]] = [{} for _ in range(n)]
    people: list[dict[str, float]] = [{} for _ in range(n)]
    for rel_name, field in FIELDS.items():
        rel = graph.relations.get(rel_name)
        if rel is None or len(rel.dst) == 0:
            continue
        names = graph.resources if rel_name == "flow" else graph.entities.get(_entity_type(rel_name), [])
        m = sp.csr_matrix((rel.weight.astype(np.float64), (rel.dst, rel.src)), shape=(n, len(names)))
        m.sum_duplicates()
        for i, row in enumerate(_top_per_row(m, top)):
            if row:
                ev[i][field] = [[names[j], round(w, 3)] for j, w in row]
        if rel_name in ("create", "manage", "use"):
            coo = m.tocoo()
            for i, j, w in zip(coo.row, coo.col, coo.data, strict=True):
                key = names[j]
                if key.startswith(("person:", "user:")):
                    people[i][key] = people[i].get(key, 0.0) + float(w)
    for i, p in enumerate(people):
        if p:
            ev[i]["people"] = [[k, round(v, 3)] for k, v in sorted(p.items(), key=lambda kv: -kv[1])[:top]]
    return ev


def _entity_type(rel_name: str) -> str:
    from engine.graph import RELATIONS

    return RELATIONS[rel_name]
