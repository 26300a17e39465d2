"""The experiments DVC knows, side by side in the report's columns, short enough for an
80-column terminal (`dvc exp show` has a column per parameter: about 190 here).

    python -m imagenette_repro.experiments.runs [--input EXP_SHOW_JSON] [--all]
    python -m imagenette_repro.experiments.runs [--input EXP_SHOW_JSON] --keep NAME

One line per experiment (the workspace and its commit first): the network, the report's
six columns (optimizer, learn_rate, patience, drop_period, drop_rate_factor,
image_augmentation), the input side, the epochs run (while `dvc exp run` trains in the
workspace, the epochs finished, from the DVCLive summary; a queued experiment shows its
state), the val-folder accuracy and the
report's published accuracy where the run is at the report's settings. --all adds the
commits' own rows; by default only the workspace, the baseline and experiments show.

--keep NAME prints, instead, `dvc exp show --json` cut to the workspace and the experiment
NAME under its baseline commit (DVC's own entries: the experiment's rev, name, params and
metrics): what scripts/recorded_exp_run.sh keeps as a recorded run's exp_show.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

EVALUATION = "metrics/evaluation.json"
TRAIN_SUMMARY = "metrics/train_custom/metrics.json"


@dataclass
class Run:
    """One entry of `dvc exp show --json`: a commit, the workspace or an experiment."""

    name: str
    rev: str
    kind: str  # workspace | commit | experiment
    params: dict = field(default_factory=dict)  # params.yaml
    metrics: dict = field(default_factory=dict)  # metrics file -> its data
    state: str = ""  # an experiment's executor state: success, running, queued, failed, ...
    timestamp: str | None = None

    @property
    def own_metrics(self) -> dict:
        """Its metrics, or none for a queued, running or failed experiment (DVC shows such
        an experiment with its parent commit's metrics)."""
        return self.metrics if self.state in ("", "success") else {}

    @property
    def finished(self) -> bool:
        """A run with its own evaluation."""
        evaluation = self.own_metrics.get(EVALUATION) or {}
        return get_dotted(evaluation, "custom.val_folder.accuracy") is not None


def _file_data(data: dict, section: str) -> dict:
    """{file: its data} of a revision's params or metrics (file names hold dots)."""
    return {
        path: (value or {}).get("data") or {} for path, value in (data.get(section) or {}).items()
    }


def _entry(entry: dict, kind: str, fallback_name: str = "", state: str = "") -> Run:
    data = entry.get("data") or {}
    rev = entry.get("rev") or data.get("rev") or ""
    name = entry.get("name") or fallback_name or ("workspace" if kind == "workspace" else rev[:7])
    return Run(
        name=name,
        rev=rev,
        kind=kind,
        params=_file_data(data, "params").get("params.yaml", {}),
        metrics=_file_data(data, "metrics"),
        state=(state or "").lower(),
        timestamp=data.get("timestamp"),
    )


def read_runs(shown: list[dict]) -> list[Run]:
    """Every workspace, commit and experiment entry of `dvc exp show --json`, in its order:
    the project's one reader of DVC's experiment records."""
    runs = []
    for commit in shown or []:
        commit = commit or {}
        kind = "workspace" if commit.get("rev") == "workspace" else "commit"
        runs.append(_entry(commit, kind))
        for experiment in commit.get("experiments") or []:
            state = ((experiment or {}).get("executor") or {}).get("state") or ""
            for rev in (experiment or {}).get("revs") or []:
                runs.append(_entry(rev or {}, "experiment", experiment.get("name") or "", state))
    return runs


def keep_experiment(shown: list[dict], name: str) -> list[dict]:
    """`dvc exp show --json` cut to one experiment: the workspace entry, and each commit
    that lists an experiment named `name`, with only that experiment under its
    `experiments` (the entry as DVC gives it: rev, name, params, metrics). A UserError when
    no commit lists it."""
    kept = []
    for commit in shown or []:
        commit = commit or {}
        if commit.get("rev") == "workspace":
            kept.append(commit)
            continue
        own = [e for e in commit.get("experiments") or [] if (e or {}).get("name") == name]
        if own:
            kept.append({**commit, "experiments": own})
    if len(kept) == sum(1 for c in kept if c.get("rev") == "workspace"):
        raise UserError(f"no experiment named {name} in `dvc exp show --json`")
    return kept


def recorded_run(runs: list[Run], name: str, baseline: str = "") -> Run | None:
    """The finished experiment in a recorded run's exp_show.json (scripts/recorded_exp_run.sh;
    `name` and `baseline` are its run.json's experiment and commit):
    - the experiment entry named `name`, under its baseline (records kept with --keep; DVC
      lists the newest first);
    - else, in earlier records (`dvc exp show --json --rev NAME`, which shows the
      experiment's commit as a nameless commit entry), the commit entry other than
      `baseline`, the commit the run started from;
    - else the workspace, where the run left the experiment applied.
    None when none of these has a finished evaluation."""
    finished = [run for run in runs if run.finished]
    for wanted in (
        lambda run: run.kind == "experiment" and run.name == name,
        lambda run: run.kind == "commit" and run.rev != baseline,
        lambda run: run.kind == "workspace",
    ):
        found = next((run for run in finished if wanted(run)), None)
        if found:
            return found
    return None


def exp_show_json(path: Path | None = None) -> list[dict]:
    """`dvc exp show --json` of this repository, or a saved copy of it."""
    if path is not None:
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: not a readable `dvc exp show --json` file ({err})") from None
    # DVC of this Python (python -m dvc), whether or not its scripts are on PATH.
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"dvc exp show failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def get_dotted(tree: dict, dotted: str, default=None):
    """tree["a"]["b"] for "a.b"; `default` where a part is missing."""
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return default
        tree = tree[part]
    return tree


def _number(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


# (header, width) of each column; the experiment's name takes what is left of 80.
COLUMNS = [
    ("net", 7),
    ("opt", 4),
    ("lr", 6),
    ("pat", 3),
    ("per", 3),
    ("fact", 4),
    ("aug", 3),
    ("px", 3),
    ("ep", 5),
    ("val%", 5),
    ("rep%", 5),
]
WIDTH = 80
LEGEND = """\
opt lr pat per fact aug: the report's columns optimizer, learn_rate, patience,
  drop_period, drop_rate_factor, image_augmentation; px: input side; ep: epochs
  run/max (while training: epochs finished); val%: val-folder accuracy (the
  report's measure); rep%: the report's accuracy, at the report's settings only"""
NAME_WIDTH = WIDTH - sum(width + 1 for _, width in COLUMNS)


def run_cells(run: Run) -> list[str]:
    """A run's cells in COLUMNS' order."""
    p = run.params
    network = p.get("network") or "-"
    recipe = get_dotted(p, f"recipes.{network}") if network != "-" else None
    if recipe:  # a recipe's own optimiser and rate replace the report's columns
        columns = [recipe.get("optimizer"), recipe.get("learn_rate"), None, None, None]
        columns.append(recipe.get("augmentation"))
    else:
        columns = [p.get(key) for key in ("optimizer", "learn_rate", "patience")]
        columns += [p.get("drop_period"), p.get("drop_rate_factor"), p.get("image_augmentation")]
    evaluation = run.own_metrics.get(EVALUATION) or {}
    summary = run.own_metrics.get(TRAIN_SUMMARY) or {}
    epochs = get_dotted(evaluation, "custom.epochs_run")
    if epochs is None and "step" in summary:  # still training: the epochs it has finished
        epochs = summary["step"] + 1
    max_epochs = get_dotted(p, "train.max_epochs")
    reported = get_dotted(evaluation, "custom.report_accuracy")
    return [
        network.removeprefix("network_"),
        *(_number(value, 3) for value in columns),
        _number(get_dotted(p, "data.input_size"), 4),
        f"{epochs}/{max_epochs}" if epochs is not None else run.state[:5] or "-",
        _pct(get_dotted(evaluation, "custom.val_folder.accuracy")),
        _pct(reported) if get_dotted(evaluation, "custom.is_report_row") else "-",
    ]


def format_table(runs: list[Run], include_commits: bool = False) -> str:
    shown = [
        run
        for index, run in enumerate(runs)
        if run.kind != "commit"
        or include_commits
        or (index and runs[index - 1].kind == "workspace")
    ]
    header = ["experiment", *(name for name, _ in COLUMNS)]
    widths = [NAME_WIDTH, *(width for _, width in COLUMNS)]
    lines = [" ".join(cell.ljust(w)[:w] for cell, w in zip(header, widths, strict=True))]
    for run in shown:
        name = run.name if len(run.name) <= NAME_WIDTH else run.name[: NAME_WIDTH - 1] + "~"
        cells = [name, *run_cells(run)]
        lines.append(" ".join(c.ljust(w)[:w] for c, w in zip(cells, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, help="a saved `dvc exp show --json` file")
    parser.add_argument("--all", action="store_true", help="every commit's row too")
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="print the JSON cut to the workspace and experiment NAME under its baseline",
    )
    args = parser.parse_args(argv)
    try:
        shown = exp_show_json(args.input)
        if args.keep:
            print(json.dumps(keep_experiment(shown, args.keep)))
            return 0
        runs = read_runs(shown)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(runs, include_commits=args.all))
    print(LEGEND)
    return 0


if __name__ == "__main__":
    sys.exit(main())
