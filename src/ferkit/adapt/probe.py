"""The linear probe of ``ferkit adapt --mode head``: a regularised head on a frozen expression model.

Each member of the base model gets its own head over [its features, its own head's log-probabilities]
(the base model's knowledge of the seven expressions is then one input among others). Features are
standardised and reduced by PCA, log-probabilities standardised, and a multinomial logistic
regression is fitted; which inputs (features, log-probabilities or both) and how much regularisation
are chosen by an inner grouped cross-validation. Every step is linear, so the fitted pipeline folds
into one `torch.nn.Linear` (`LinearMap`) and the adapted model is an ordinary ferkit model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ferkit.adapt.folds import inner_folds

INPUTS = ("logprobs", "features", "both")  # in order of preference on ties
C_GRID = (0.01, 0.1, 1.0)
PCA_DIMS = 128
ABSENT_BIAS = -30.0  # logit of a class without training items: never predicted


@dataclass
class LinearMap:
    """``x @ weight.T + bias``."""

    weight: np.ndarray  # (out, in)
    bias: np.ndarray  # (out,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias


@dataclass
class Choice:
    """What the inner cross-validation picked for one member, and its inner accuracy."""

    inputs: str
    c: float
    inner_accuracy: float | None


def member_inputs(features: np.ndarray, head: LinearMap) -> np.ndarray:
    """(V, N, D) features → (V, N, D + K) [features, log-softmax of the member's own head]."""
    logits = head(features)
    logits = logits - logits.max(-1, keepdims=True)
    logprobs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return np.concatenate([features, logprobs], axis=-1).astype(np.float32)


def _reducer(x: np.ndarray, n_features: int, seed: int) -> tuple[LinearMap, np.ndarray, np.ndarray]:
    """Standardise, PCA on the feature block: the map to reduced space and its two column blocks."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    dims = min(PCA_DIMS, n_features, len(x) - 1)
    pca = PCA(dims, random_state=seed, svd_solver="randomized").fit(z[:, :n_features])
    k = x.shape[1] - n_features
    weight = np.zeros((dims + k, x.shape[1]))
    weight[:dims, :n_features] = pca.components_
    weight[dims:, n_features:] = np.eye(k)
    weight /= std
    bias = -weight @ mean
    bias[:dims] -= pca.components_ @ pca.mean_
    return LinearMap(weight, bias), np.arange(dims), np.arange(dims, dims + k)


def _fit_lr(
    z: np.ndarray, y: np.ndarray, columns: np.ndarray, c: float, n_classes: int, seed: int
) -> LinearMap:
    """Logistic regression on ``z[:, columns]``, as a map over all of ``z`` (other columns weight 0)."""
    weight = np.zeros((n_classes, z.shape[1]))
    bias = np.full(n_classes, ABSENT_BIAS)
    present = np.unique(y)
    if len(present) == 1:
        bias[present[0]] = 0.0
        return LinearMap(weight, bias)
    lr = LogisticRegression(C=c, max_iter=300, tol=1e-4, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr.fit(z[:, columns], y)
    coef, intercept = (
        (lr.coef_, lr.intercept_)
        if len(present) > 2
        else (np.vstack([-lr.coef_[0], lr.coef_[0]]) / 2, np.array([-lr.intercept_[0], lr.intercept_[0]]) / 2)
    )
    weight[np.ix_(lr.classes_, columns)] = coef
    bias[lr.classes_] = intercept
    return LinearMap(weight, bias)


def view_probabilities(x: np.ndarray, head: LinearMap) -> np.ndarray:
    """(V, N, d) inputs → (N, C) probabilities averaged over the views (flip TTA)."""
    logits = head(x)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).mean(0)


def _rows(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every view of items ``idx`` as its own training row."""
    return x[:, idx].reshape(-1, x.shape[-1]), np.tile(y[idx], x.shape[0])


def fit_member(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, n_features: int, n_classes: int, seed: int
) -> tuple[LinearMap, Choice]:
    """The probe for one member: inputs and C chosen by inner CV, then fitted on all of ``x``.

    Args:
        x: (V, N, D + K) `member_inputs` of the training items.
        y: (N,) labels; groups: (N,) people (or None).
        n_features: D; n_classes: the user's classes.

    Returns:
        The fitted head (a map on the D + K inputs) and the choice made.
    """
    reducer, feat_cols, prob_cols = _reducer(x.reshape(-1, x.shape[-1]), n_features, seed)
    z = reducer(x)
    blocks = {"logprobs": prob_cols, "features": feat_cols, "both": np.concatenate([feat_cols, prob_cols])}
    grid = [(inputs, c) for inputs in INPUTS for c in C_GRID]
    folds = inner_folds(y, groups, seed)
    scores = np.zeros(len(grid))
    for train, test in folds:
        rows, labels = _rows(z, y, train)
        for g, (inputs, c) in enumerate(grid):
            head = _fit_lr(rows, labels, blocks[inputs], c, n_classes, seed)
            scores[g] += (view_probabilities(z[:, test], head).argmax(1) == y[test]).mean() / len(folds)
    best = int(np.argmax(scores)) if folds else grid.index(("logprobs", 0.1))
    inputs, c = grid[best]
    rows, labels = _rows(z, y, np.arange(len(y)))
    head = _fit_lr(rows, labels, blocks[inputs], c, n_classes, seed)
    folded = LinearMap(head.weight @ reducer.weight, head.weight @ reducer.bias + head.bias)
    return folded, Choice(inputs, c, float(scores[best]) if folds else None)
