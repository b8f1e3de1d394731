"""Plain, slow reference implementations (numpy loops, textbook formulas) for the metric tests.

Nothing here is shared with core/: each definition is written from the paper / platonic-rep formula so
that a fast implementation in core/ is checked against an independent one.
"""

from __future__ import annotations

import numpy as np


def unit_rows(feats):
    feats = np.asarray(feats, dtype=np.float64)
    norms = np.sqrt((feats**2).sum(axis=1, keepdims=True))
    return feats / np.maximum(norms, 1e-12)


def _exact_cosine_key(x, y):
    """A key that orders pairs by cos(x, y) exactly (rational arithmetic on the float values): equal
    cosines give equal keys, so mathematical ties stay ties. A zero row has cosine 0."""
    from fractions import Fraction

    dot = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(x, y))
    norms = sum(Fraction(float(a)) ** 2 for a in x) * sum(Fraction(float(b)) ** 2 for b in y)
    if norms == 0 or dot == 0:
        return Fraction(0)
    return (1 if dot > 0 else -1) * dot * dot / norms  # sign(cos) · cos²: monotone in cos


def knn_lists(feats, k, normalize=True):
    """For each i: the k other rows with the largest cosine (exactly, so ties are ties), ties to the
    lower index; ``normalize=False``: the largest raw inner product."""
    feats = np.asarray(feats, dtype=np.float64)
    n = feats.shape[0]
    lists = []
    for i in range(n):
        scored = []
        for j in range(n):
            if j != i:
                key = _exact_cosine_key(feats[i], feats[j]) if normalize else float(np.dot(feats[i], feats[j]))
                scored.append((-key, j))
        scored.sort()
        lists.append([j for _, j in scored[:k]])
    return lists


def mutual_knn(a, b, k):
    la, lb = knn_lists(a, k), knn_lists(b, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(la, lb)]))


def jaccard_knn(a, b, k):
    la, lb = knn_lists(a, k), knn_lists(b, k)
    return float(np.mean([len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(la, lb)]))


def cycle_knn(a, b, k):
    la, lb = knn_lists(a, k), knn_lists(b, k)
    hits = []
    for i in range(len(la)):
        hits.append(any(i in la[j] for j in lb[i]))
    return float(np.mean(hits))


def hsic_unbiased(K, L):
    """Song et al. 2012 eq. 5, exactly as platonic-rep writes it (K̃∘L̃ᵀ, no symmetry assumed)."""
    m = K.shape[0]
    Kt = K.copy()
    Lt = L.copy()
    np.fill_diagonal(Kt, 0)
    np.fill_diagonal(Lt, 0)
    value = (Kt * Lt.T).sum() + Kt.sum() * Lt.sum() / ((m - 1) * (m - 2)) - 2 * (Kt @ Lt).sum() / (m - 2)
    return value / (m * (m - 3))


def hsic_biased(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H)


def cknna(a, b, k, normalize=True):
    """platonic-rep CKNNA: mask = top-k(K) AND top-k(L) (diagonal excluded), unbiased HSIC, no +1e-6."""
    fa = unit_rows(a) if normalize else np.asarray(a, dtype=np.float64)
    fb = unit_rows(b) if normalize else np.asarray(b, dtype=np.float64)
    K, L = fa @ fa.T, fb @ fb.T
    n = K.shape[0]

    def mask_of(lists):
        mask = np.zeros((n, n))
        for i, row in enumerate(lists):
            mask[i, row] = 1.0
        return mask

    mask_k = mask_of(knn_lists(fa, k, normalize=False))
    mask_l = mask_of(knn_lists(fb, k, normalize=False))
    kl = hsic_unbiased(mask_k * mask_l * K, mask_k * mask_l * L)
    kk = hsic_unbiased(mask_k * K, mask_k * K)
    ll = hsic_unbiased(mask_l * L, mask_l * L)
    return kl / np.sqrt(kk * ll)


def linear_cka(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    K, L = a @ a.T, b @ b.T
    return hsic_biased(K, L) / np.sqrt(hsic_biased(K, K) * hsic_biased(L, L))


def debiased_cka(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    K, L = a @ a.T, b @ b.T
    return hsic_unbiased(K, L) / np.sqrt(hsic_unbiased(K, K) * hsic_unbiased(L, L))


def rbf_kernel(x, sigma_factor):
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    dist = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            dist[i, j] = np.sqrt(((x[i] - x[j]) ** 2).sum())
    sigma = sigma_factor * np.median(dist[np.triu_indices(n, 1)])
    return np.exp(-(dist**2) / (2 * sigma**2))


def rbf_cka(a, b, sigma_factor=1.0):
    K, L = rbf_kernel(a, sigma_factor), rbf_kernel(b, sigma_factor)
    return hsic_biased(K, L) / np.sqrt(hsic_biased(K, K) * hsic_biased(L, L))


def gaussian(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d))


def random_orthogonal(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# --- neighbour lists by similarity, and order measures of two lists ---------------------------------


def similarity_lists(feats, k, similarity="cosine"):
    """For each i: the k other rows ranked by cosine (exactly, in rational arithmetic: a float dot product
    of unit rows may be fused-multiply-added into a tiny non-zero where the cosine is exactly 0), raw inner
    product, or (smallest first) Euclidean distance computed from the coordinate differences; ties to the
    lower index."""
    feats = np.asarray(feats, dtype=np.float64)
    if similarity == "cosine":
        return knn_lists(feats, k)
    n = feats.shape[0]
    lists = []
    for i in range(n):
        scored = []
        for j in range(n):
            if j == i:
                continue
            if similarity == "euclidean":
                score = -float(((feats[i] - feats[j]) ** 2).sum())
            else:
                score = float(np.dot(feats[i], feats[j]))
            scored.append((-score, j))
        scored.sort()
        lists.append([j for _, j in scored[:k]])
    return lists


def lcs_length(x, y):
    """Longest common subsequence of two sequences: the textbook table."""
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            if x[i - 1] == y[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table[len(x)][len(y)]


def levenshtein(x, y):
    """Edit distance with unit insertion, deletion and substitution costs: the textbook table."""
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(len(x) + 1):
        table[i][0] = i
    for j in range(len(y) + 1):
        table[0][j] = j
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            substitution = table[i - 1][j - 1] + (0 if x[i - 1] == y[j - 1] else 1)
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, substitution)
    return table[len(x)][len(y)]


def knn_scores(a, b, k, similarity="cosine"):
    """Every list-based k-NN score of (a, b), from plain Python loops over the two lists of each sample."""
    la, lb = similarity_lists(a, k, similarity), similarity_lists(b, k, similarity)
    n = len(la)
    return {
        "mutual_knn": float(np.mean([len(set(x) & set(y)) / k for x, y in zip(la, lb)])),
        "jaccard_knn": float(np.mean([len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(la, lb)])),
        "cycle_knn": float(np.mean([any(i in la[j] for j in lb[i]) for i in range(n)])),
        "lcs_knn": float(np.mean([lcs_length(x, y) for x, y in zip(la, lb)])) / k,
        "edit_distance_knn": 1.0 - float(np.mean([levenshtein(x, y) for x, y in zip(la, lb)])) / k,
    }


def cknna_by_similarity(a, b, k, similarity="cosine"):
    """Dense CKNNA with the mask from ``similarity_lists``; kernels: cosines, raw inner products, or for
    "euclidean" inner products of the column-centred features."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if similarity == "cosine":
        fa, fb = unit_rows(a), unit_rows(b)
    elif similarity == "ip":
        fa, fb = a, b
    else:
        fa, fb = a - a.mean(axis=0), b - b.mean(axis=0)
    K, L = fa @ fa.T, fb @ fb.T
    n = K.shape[0]
    mask_k, mask_l = np.zeros((n, n)), np.zeros((n, n))
    for i, row in enumerate(similarity_lists(a, k, similarity)):
        mask_k[i, row] = 1.0
    for i, row in enumerate(similarity_lists(b, k, similarity)):
        mask_l[i, row] = 1.0
    kl = hsic_unbiased(mask_k * mask_l * K, mask_k * mask_l * L)
    kk = hsic_unbiased(mask_k * K, mask_k * K)
    ll = hsic_unbiased(mask_l * L, mask_l * L)
    return kl / np.sqrt(kk * ll)


def expected_lis_by_enumeration(m):
    """Mean longest increasing subsequence over all m! permutations (quadratic DP for each)."""
    import itertools

    total, count = 0, 0
    for perm in itertools.permutations(range(m)):
        best = [1] * m
        for i in range(m):
            for j in range(i):
                if perm[j] < perm[i]:
                    best[i] = max(best[i], best[j] + 1)
        total += max(best) if m else 0
        count += 1
    return total / count


def expected_lcs_of_random_lists(n_others, k):
    """E[LCS] of two independent uniformly random ordered k-lists of n_others items, by enumerating
    every pair of lists."""
    import itertools

    lists = list(itertools.permutations(range(n_others), k))
    return sum(lcs_length(x, y) for x in lists for y in lists) / len(lists) ** 2
