"""Rank agreement with the report (report/ranking.py) and the study's rule for a one-sided
p-value (study.p_value_verdict)."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from imagenette_repro.report.ranking import (
    PERMUTATIONS,
    RankAgreement,
    rank_agreement,
    ranking_sentence,
)
from imagenette_repro.report.study import (
    CONTRADICTED,
    NOT_ENOUGH_RUNS,
    NOT_RESOLVED,
    SUPPORTED,
    p_value_verdict,
)

# The report's 15 accuracies (params.yaml report_rows), best first.
REPORT = [
    0.8482,
    0.8433,
    0.8395,
    0.8326,
    0.8313,
    0.8283,
    0.8232,
    0.8224,
    0.7908,
    0.7544,
    0.7427,
    0.7417,
    0.7169,
    0.6566,
    0.6408,
]
# A reordering of 15 with Spearman's rho of about 0: no agreement either way.
SHUFFLE = [7, 13, 2, 10, 0, 5, 14, 3, 11, 8, 1, 12, 6, 9, 4]


def test_the_rule_for_a_one_sided_p_value() -> None:
    assert p_value_verdict(0.01, 0.99) == SUPPORTED
    assert p_value_verdict(0.99, 0.01) == CONTRADICTED
    assert p_value_verdict(0.2, 0.8) == NOT_RESOLVED
    assert p_value_verdict(0.05, 0.95) == NOT_RESOLVED  # below alpha, not at it
    assert p_value_verdict(0.04, 0.96, alpha=0.01) == NOT_RESOLVED
    assert p_value_verdict(math.nan, math.nan) == NOT_ENOUGH_RUNS


def test_the_same_order_holds() -> None:
    here = [accuracy - 0.2 for accuracy in REPORT]  # lower, in the same order
    found = rank_agreement(REPORT, here)
    assert found.rho == pytest.approx(1) and found.tau == pytest.approx(1)
    assert found.verdict == SUPPORTED and found.tau_verdict == SUPPORTED
    assert found.rho_p_greater == pytest.approx(1 / (PERMUTATIONS + 1))  # none as extreme
    assert found.rho_low == pytest.approx(1) and found.rho_high == pytest.approx(1)
    assert found.n == 15
    assert ranking_sentence(found, "15 rows").startswith(
        "For 15 rows, the report's ranking holds (supported): Spearman's rho = +1.00"
    )


def test_the_reversed_order_is_contradicted() -> None:
    found = rank_agreement(REPORT, list(reversed(REPORT)))
    assert found.rho == pytest.approx(-1) and found.tau == pytest.approx(-1)
    assert found.verdict == CONTRADICTED and found.tau_verdict == CONTRADICTED
    assert found.rho_p_greater == pytest.approx(1)
    assert found.rho_high == pytest.approx(-1)
    assert "does not hold, it is reversed (contradicted)" in ranking_sentence(found, "x")


def test_a_shuffled_order_is_not_resolved() -> None:
    here = [REPORT[i] for i in SHUFFLE]
    found = rank_agreement(REPORT, here)
    assert abs(found.rho) < 0.2
    assert found.verdict == NOT_RESOLVED
    assert found.rho_p_greater > 0.05 and found.rho_p_less > 0.05
    assert found.rho_low < 0 < found.rho_high
    sentence = ranking_sentence(found, "x")
    assert "is neither shown to hold nor shown reversed (not resolved)" in sentence


def test_rhos_p_value_is_the_exact_permutation_p_value() -> None:
    """Seven rows: scipy enumerates all 5,040 orderings; the p-value counted here by hand."""
    report = [0.85, 0.84, 0.83, 0.79, 0.75, 0.72, 0.64]
    here = [0.60, 0.63, 0.58, 0.55, 0.59, 0.50, 0.52]
    found = rank_agreement(report, here)
    observed = stats.spearmanr(report, here).statistic
    # No ties: rho = 1 - 6 sum(d^2) / (n (n^2 - 1)) over every ordering of here's ranks.
    ranks_report = stats.rankdata(report)
    orders = np.array(list(itertools.permutations(stats.rankdata(here))))
    rhos = 1 - 6 * ((orders - ranks_report) ** 2).sum(axis=1) / (7 * (7**2 - 1))
    assert len(rhos) == 5040
    assert found.rho == pytest.approx(observed)
    assert found.rho_p_greater == pytest.approx(np.mean(rhos >= observed - 1e-12))
    assert found.rho_p_less == pytest.approx(np.mean(rhos <= observed + 1e-12))
    assert "exact" in found.rho_p_method
    # a draw of seven equal rows has no rho: left out, the interval stays finite
    assert -1 <= found.rho_low < found.rho < found.rho_high <= 1


def test_p_values_against_scipys_own() -> None:
    """Kendall's tau: scipy's exact p-value itself; Spearman's rho (10,000 orderings) near
    scipy's t approximation, and the same from one call to the next (a fixed seed)."""
    here = [REPORT[i] for i in [0, 3, 1, 6, 2, 9, 4, 5, 12, 7, 8, 14, 10, 13, 11]]
    found = rank_agreement(REPORT, here)
    for alternative, p in (("greater", found.tau_p_greater), ("less", found.tau_p_less)):
        exact = stats.kendalltau(REPORT, here, method="exact", alternative=alternative)
        assert p == pytest.approx(exact.pvalue)
    assert found.tau == pytest.approx(stats.kendalltau(REPORT, here).statistic)
    approximate = stats.spearmanr(REPORT, here, alternative="greater").pvalue
    assert found.rho_p_greater == pytest.approx(approximate, abs=0.005)
    assert found.rho_p_greater < 0.05 and found.verdict == SUPPORTED
    assert rank_agreement(REPORT, here) == found


def test_tied_accuracies_take_a_permutation_p_value_for_tau() -> None:
    here = [0.6, 0.6, 0.55, 0.55, 0.5, 0.5, 0.45, 0.45, 0.4, 0.4, 0.35, 0.35, 0.3, 0.3, 0.2]
    found = rank_agreement(REPORT, here)
    assert "permutation" in found.tau_p_method
    assert found.tau == pytest.approx(stats.kendalltau(REPORT, here).statistic)  # tau-b
    assert found.verdict == SUPPORTED and found.tau_verdict == SUPPORTED
    assert 0 < found.tau_p_greater < 0.001


@pytest.mark.parametrize(
    "report, here",
    [([0.8, 0.7, 0.6], [0.6, 0.5, 0.4]), ([0.8, 0.7, 0.6, 0.5], [0.5] * 4), ([], [])],
)
def test_too_few_rows_cannot_be_tested(report: list, here: list) -> None:
    found = rank_agreement(report, here)
    assert isinstance(found, RankAgreement)
    assert found.verdict == NOT_ENOUGH_RUNS and math.isnan(found.rho)
    assert "cannot be tested (not enough runs)" in ranking_sentence(found, "x")


def test_unequal_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        rank_agreement([0.8, 0.7, 0.6], np.array([0.5, 0.4]))
