"""Maximum-weight matching of tracks to detections, without scipy.

The tracker once called ``scipy.optimize.linear_sum_assignment`` the first time two tracks competed for a
detection. Importing ``scipy.optimize`` at that moment took 0.35 s on a quiet machine (about 1 s on a busy
one) inside the frame being processed, and added 11.7 MB of malloc'd memory and 147k Python objects to a node
that had been flat for 27,000 frames of a soak (docs/hostile_inputs.md). Association problems are tiny, and
the competing part of one is tinier still: the candidate pairs split into connected groups, most of them a
single pair; only a group where a track or a detection has two candidates needs the Hungarian method, here
the shortest-augmenting-path form with row and column potentials, O(n^2 m) on that group alone.
"""
from __future__ import annotations

import numpy as np


def max_weight_matching(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a matching with the largest total ``score`` among its positive entries.

    Entries <= 0 are not candidates and never paired. Deterministic: ties go to the lower index. Returns the
    pairs sorted by row.
    """
    score = np.asarray(score, dtype=np.float64)
    candidates = score > 0
    rows: list[int] = []
    cols: list[int] = []
    for group_rows, group_cols in _groups(candidates):
        if len(group_rows) == 1 and len(group_cols) == 1:
            rows.append(group_rows[0])
            cols.append(group_cols[0])
            continue
        sub = np.where(candidates[np.ix_(group_rows, group_cols)], score[np.ix_(group_rows, group_cols)], 0.0)
        for r, c in _hungarian_max(sub):
            if sub[r, c] > 0:
                rows.append(group_rows[r])
                cols.append(group_cols[c])
    order = np.argsort(rows, kind="stable")
    return np.asarray(rows, dtype=np.int64)[order], np.asarray(cols, dtype=np.int64)[order]


def _groups(candidates: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """Connected groups of the bipartite graph of candidate pairs, each as (sorted rows, sorted cols)."""
    n_rows, n_cols = candidates.shape
    parent = list(range(n_rows + n_cols))  # rows 0..n_rows-1, then the columns

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for r, c in zip(*np.nonzero(candidates)):
        a, b = root(int(r)), root(n_rows + int(c))
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for r in range(n_rows):
        if candidates[r].any():
            groups.setdefault(root(r), ([], []))[0].append(r)
    for c in range(n_cols):
        if candidates[:, c].any():
            groups.setdefault(root(n_rows + c), ([], []))[1].append(c)
    return [groups[k] for k in sorted(groups)]


def _hungarian_max(weight: np.ndarray) -> list[tuple[int, int]]:
    """A full matching of the smaller side maximising the total weight (the Hungarian method)."""
    transposed = weight.shape[0] > weight.shape[1]
    cost = -(weight.T if transposed else weight)  # n <= m rows and columns, minimised
    n, m = cost.shape
    u = np.zeros(n + 1)  # row potentials (1-based; 0 is the virtual start)
    v = np.zeros(m + 1)  # column potentials
    owner = np.zeros(m + 1, dtype=np.int64)  # row matched to each column (0: none)
    way = np.zeros(m + 1, dtype=np.int64)  # previous column on the augmenting path
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        min_slack = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used
            free[0] = False
            slack = cost[i0 - 1] - u[i0] - v[1:]
            better = free[1:] & (slack < min_slack[1:])
            min_slack[1:][better] = slack[better]
            way[1:][better] = j0
            masked = np.where(free, min_slack, np.inf)
            j1 = int(np.argmin(masked))
            delta = masked[j1]
            u[owner[used]] += delta
            v[used] -= delta
            min_slack[free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            owner[j0] = owner[j1]
            j0 = j1
    pairs = [(int(owner[j]) - 1, j - 1) for j in range(1, m + 1) if owner[j]]
    return [(c, r) for r, c in pairs] if transposed else pairs
