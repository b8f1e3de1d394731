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


def knn_lists(feats, k, normalize=True):
    """For each i: the k other rows with the largest cosine, ties to the lower index."""
    feats = unit_rows(feats) if normalize else np.asarray(feats, dtype=np.float64)
    n = feats.shape[0]
    lists = []
    for i in range(n):
        scored = []
        for j in range(n):
            if j != i:
                scored.append((-float(np.dot(feats[i], feats[j])), j))
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
