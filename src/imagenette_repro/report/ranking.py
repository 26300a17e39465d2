"""Does the report's ranking of its rows hold here? Rank agreement between the report's
accuracies and this project's, one value per row.

Spearman's rho with a one-sided permutation p-value (the rows' pairings shuffled: exact
when n! is at most PERMUTATIONS, else PERMUTATIONS random ones from a fixed seed) and a
percentile bootstrap interval; Kendall's tau with scipy's exact one-sided p-value (a
permutation p-value when accuracies tie). The verdict is the study's rule for a one-sided
test (study.p_value_verdict) applied to rho: the claim is "agreement > 0".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .study import (
    ALPHA,
    CONFIDENCE,
    CONTRADICTED,
    NOT_ENOUGH_RUNS,
    NOT_RESOLVED,
    SUPPORTED,
    p_value_verdict,
)

PERMUTATIONS = 10_000
BOOTSTRAP_RESAMPLES = 10_000
RANDOM_SEED = 0  # the permutations' and the bootstrap's: the same inputs, the same p-values
MIN_ROWS = 4  # 4! = 24 orderings: the smallest p-value, 1/24, can fall below 0.05

# What each verdict says of the report's ranking.
RANKING_WORDS = {
    SUPPORTED: "holds",
    CONTRADICTED: "does not hold, it is reversed",
    NOT_RESOLVED: "is neither shown to hold nor shown reversed",
    NOT_ENOUGH_RUNS: "cannot be tested",
}


@dataclass(frozen=True)
class RankAgreement:
    """Rank correlations of paired accuracies, their one-sided p-values (> 0 and < 0),
    rho's bootstrap interval, and the verdict on "agreement > 0"."""

    n: int
    rho: float
    rho_p_greater: float
    rho_p_less: float
    rho_p_method: str
    rho_low: float
    rho_high: float
    tau: float
    tau_p_greater: float
    tau_p_less: float
    tau_p_method: str
    verdict: str
    tau_verdict: str


def _spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along `axis` (Pearson's r of the average ranks), vectorised for
    scipy's resampling; a constant resample gives NaN."""
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=axis) / np.sqrt(
            (rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis)
        )


def _kendall(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Kendall's tau-b along the last axis, vectorised: the sum over pairs of the product of
    the pairs' signs, over the square root of the untied pairs of each."""
    if axis != -1:
        x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    dx = np.sign(x[..., :, None] - x[..., None, :])
    dy = np.sign(y[..., :, None] - y[..., None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (dx * dy).sum(axis=(-2, -1)) / np.sqrt(
            np.abs(dx).sum(axis=(-2, -1)) * np.abs(dy).sum(axis=(-2, -1))
        )


def _permutation_p(x: np.ndarray, y: np.ndarray, statistic) -> tuple[float, float]:
    """One-sided p-values (greater, less) of a permutation test of the pairings: `y`
    reordered against a fixed `x` (exact when all n! orderings fit in PERMUTATIONS)."""
    greater, less = (
        stats.permutation_test(
            (y,),
            lambda reordered, axis=-1: statistic(x, reordered, axis=axis),
            permutation_type="pairings",
            vectorized=True,
            n_resamples=PERMUTATIONS,
            alternative=alternative,
            random_state=np.random.default_rng(RANDOM_SEED),
        ).pvalue
        for alternative in ("greater", "less")
    )
    return float(greater), float(less)


def _permutation_method(n: int) -> str:
    if math.factorial(n) <= PERMUTATIONS:
        return f"exact permutation test ({math.factorial(n)} orderings)"
    return f"permutation test, {PERMUTATIONS:,} random orderings, seed {RANDOM_SEED}"


def bootstrap_interval(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Percentile bootstrap interval of Spearman's rho over rows drawn with replacement
    (pairs kept); a draw whose accuracies are all equal has no rho and is left out (scipy's
    bootstrap would make the whole interval NaN)."""
    draws = np.random.default_rng(RANDOM_SEED).integers(0, len(x), (BOOTSTRAP_RESAMPLES, len(x)))
    rhos = _spearman(x[draws], y[draws])
    tail = 50 * (1 - CONFIDENCE)
    low, high = np.nanpercentile(rhos, [tail, 100 - tail])
    return float(low), float(high)


def rank_agreement(report: Sequence[float], here: Sequence[float]) -> RankAgreement:
    """Rank agreement of the report's accuracies with this project's (same order: one
    pair per row); fewer than MIN_ROWS pairs: NaN statistics and not enough runs."""
    x = np.asarray(report, dtype=float)
    y = np.asarray(here, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"expected two equal-length lists, got {x.shape} and {y.shape}")
    n = len(x)
    if n < MIN_ROWS or np.ptp(x) == 0 or np.ptp(y) == 0:
        nan = math.nan
        return RankAgreement(
            n, nan, nan, nan, "", nan, nan, nan, nan, nan, "", NOT_ENOUGH_RUNS, NOT_ENOUGH_RUNS
        )
    rho = float(_spearman(x, y))
    rho_greater, rho_less = _permutation_p(x, y, _spearman)
    rho_low, rho_high = bootstrap_interval(x, y)
    tau = float(_kendall(x, y))
    ties = len(set(x)) < n or len(set(y)) < n
    if ties:  # scipy's exact distribution assumes no ties
        tau_greater, tau_less = _permutation_p(x, y, _kendall)
        tau_method = _permutation_method(n)
    else:
        tau_greater, tau_less = (
            float(stats.kendalltau(x, y, method="exact", alternative=alternative).pvalue)
            for alternative in ("greater", "less")
        )
        tau_method = "exact (scipy.stats.kendalltau)"
    return RankAgreement(
        n=n,
        rho=rho,
        rho_p_greater=rho_greater,
        rho_p_less=rho_less,
        rho_p_method=_permutation_method(n),
        rho_low=rho_low,
        rho_high=rho_high,
        tau=tau,
        tau_p_greater=tau_greater,
        tau_p_less=tau_less,
        tau_p_method=tau_method,
        verdict=p_value_verdict(rho_greater, rho_less),
        tau_verdict=p_value_verdict(tau_greater, tau_less),
    )


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def ranking_sentence(agreement: RankAgreement, what: str) -> str:
    """The finding in one sentence: "For <what>, the report's ranking holds (supported):
    Spearman's rho = ..."; `what` names the runs (their settings and number of rows)."""
    found = f"For {what}, the report's ranking {RANKING_WORDS[agreement.verdict]}"
    if agreement.verdict == NOT_ENOUGH_RUNS:
        return (
            f"{found} ({agreement.verdict}): it needs {MIN_ROWS} rows or more, with "
            "accuracies that are not all equal."
        )
    sentence = (
        f"{found} ({agreement.verdict}): Spearman's rho = {agreement.rho:+.2f} (one-sided p = "
        f"{_p(agreement.rho_p_greater)} for agreement > 0, {_p(agreement.rho_p_less)} for "
        f"< 0; {agreement.rho_p_method}; {CONFIDENCE:.0%} bootstrap interval "
        f"[{agreement.rho_low:+.2f}, {agreement.rho_high:+.2f}]), Kendall's tau = "
        f"{agreement.tau:+.2f} (one-sided p = {_p(agreement.tau_p_greater)} for > 0, "
        f"{_p(agreement.tau_p_less)} for < 0; {agreement.tau_p_method}); n = {agreement.n} rows."
    )
    if agreement.tau_verdict != agreement.verdict:
        sentence += f" Kendall's tau alone: {agreement.tau_verdict}."
    return sentence + (
        f" Rule: holds when rho's one-sided p for agreement > 0 is below {ALPHA}, does "
        f"not hold when its p for agreement < 0 is, not resolved otherwise."
    )
