"""The fault matrix (tests/faults.py) as tests: every case runs for real and must
behave as promised; the matrix's own judgement is checked to be able to fail."""

from __future__ import annotations

import json

import pytest

from . import faults


@pytest.mark.parametrize(
    "case",
    # The dvc cases and those that train are end-to-end (make test-fast skips them).
    [
        pytest.param(case, marks=[pytest.mark.e2e] if case.heavy or case.trains else [])
        for case in faults.CASES
    ],
    ids=[case.name for case in faults.CASES],
)
def test_fault_case_behaves_as_promised(case: faults.Case) -> None:
    outcome = faults.run_case(case)
    assert outcome.passed, f"{case.name}: expected {case.expected}; observed {outcome.observed}"


def refusal(**changes) -> faults.StageRun:
    run = faults.StageRun(2, "", "error: data/x.tgz is corrupt or truncated\n", [])
    for key, value in changes.items():
        setattr(run, key, value)
    return run


@pytest.mark.parametrize(
    "run, passed",
    [
        (refusal(), True),
        (refusal(returncode=1), False),  # any other exit code
        (refusal(left=["imagenette"]), False),  # output left where DVC would take it
        (refusal(stderr="error: something else\n"), False),  # message does not name the fault
        (refusal(stderr="Traceback (most recent call last):\nerror: x.tgz truncated\n"), False),
    ],
    ids=["clear", "exit-1", "left-behind", "vague", "traceback"],
)
def test_a_refusal_passes_only_when_clear_clean_and_exit_2(run, passed) -> None:
    assert faults.expect_refusal(run, "x.tgz", "truncated").passed is passed


def test_matrix_command_writes_its_table(tmp_path) -> None:
    out = tmp_path / "fault_matrix"
    assert faults.main(["--only", "typo in a key", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [(row["case"], row["pass"]) for row in rows] == [("params: typo in a key", "yes")]
    table = out.with_suffix(".md").read_text()
    assert table.splitlines()[0] == "| case | group | expected | observed | pass |"
    assert "learn_rte" in table
