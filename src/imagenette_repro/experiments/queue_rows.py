"""Queue the report's table rows as named DVC experiments and run them with DVC's queue.

    python -m imagenette_repro.experiments.queue_rows queue [ROW ...] [--seeds 1 2 3]
        [-S key=value ...] [--name-suffix TEXT] [--target STAGE] [--run] [-j N]
        [--in-workspace] [--dry-run]

Each row becomes `dvc exp run --queue -n <row> -S network=<row> -S optimizer=...` with the
row's values from params.yaml (`report_rows`) and its input size from its layer list;
`-S` overrides (input size, epochs, dataset, ...) are passed to every row. A row whose
experiment already exists with exactly the same params.yaml is not queued again. A modern
recipe (a key of `recipes`, e.g. modern_resnet) is queued the same way, by name, as an
extra row: `-S network=<recipe>` at the input size of the report's best row.

--in-workspace runs the rows one after another in this working tree instead (`dvc exp run
-n <row> ...`, params.yaml restored from HEAD before each): a run cut short leaves its
checkpoint in data/checkpoints, so the same command afterwards skips the finished rows and
resumes the row it was in from its last finished epoch. A queued run starts afresh in a
new copy; this is for rows of hours on one machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from ..params import ROW_COLUMNS, Params, ParamsError, load_params
from ..progress import Progress
from .catalogue import apply_overrides
from .runs import exp_show_json, read_runs


def format_value(value: Any) -> str:
    """A value as Hydra's override grammar (dvc exp run -S) reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def experiment_name(row: str, seed: int | None = None, suffix: str = "") -> str:
    name = f"{row}-{suffix}" if suffix else row
    return name if seed is None else f"{name}-seed{seed}"


def row_overrides(
    params: Params, row: str, extra: list[str] = (), seed: int | None = None
) -> list[str]:
    """The `-S` overrides that make params.yaml one row of the report's table (or, for
    a recipe, that recipe: its own section holds its training)."""
    recipes = params.recipes
    if row not in params.report_rows and row not in recipes:
        known = ", ".join([*params.report_rows, *recipes])
        raise ParamsError(f"unknown row {row!r}; rows: {known}")
    extra_keys = {item.split("=", 1)[0] for item in extra}
    overrides = [f"network={row}"]
    if row not in recipes:
        # An override of a row column (a variant of the row) replaces the row's value.
        values = params.report_rows[row]
        overrides += [
            f"{key}={format_value(getattr(values, key))}"
            for key in ROW_COLUMNS
            if key not in extra_keys
        ]
    if "data.input_size" not in extra_keys:
        overrides.append(f"data.input_size={params.network_input_size(row)}")
    if seed is not None and "seed" not in extra_keys:
        overrides.append(f"seed={seed}")
    return overrides + list(extra)


def queue_command(
    params: Params,
    row: str,
    extra: list[str] = (),
    seed: int | None = None,
    suffix: str = "",
    targets: list[str] = (),
) -> list[str]:
    command = ["dvc", "exp", "run", "--queue", "-n", experiment_name(row, seed, suffix)]
    for override in row_overrides(params, row, extra, seed):
        command += ["-S", override]
    return command + list(targets)


def existing_experiments() -> list[tuple[str, dict]]:
    """(name, params.yaml values) of every experiment DVC knows, queued ones included."""
    return [
        (run.name, run.params) for run in read_runs(exp_show_json()) if run.kind == "experiment"
    ]


def queue_states(status: str, names: set[str]) -> dict[str, str]:
    """Each named experiment's state (Queued, Running, Success, Failed, ...) in the text
    of `dvc queue status` (columns: task, name, created, status)."""
    states = {}
    for line in status.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] in names:
            states[fields[1]] = fields[-1]
    return states


def wait_for_queue(names: set[str], poll_seconds: float = 5.0) -> dict[str, str]:
    """Block until none of the named experiments is queued or running (others in DVC's
    queue, older ones included, do not count); print the status; return their states."""
    last, finished = None, 0
    progress = Progress("queue", len(names), "experiments", stream=sys.stdout, every=60.0)
    while True:
        status = subprocess.run(
            ["dvc", "queue", "status"], capture_output=True, text=True, check=True
        ).stdout
        if status != last:
            print(status, flush=True)
            last = status
        states = queue_states(status, names)
        waiting = [state for state in states.values() if state in ("Queued", "Running")]
        done = len(states) - len(waiting)
        # A line at least every minute while an experiment trains (its log: dvc queue logs).
        progress.update(
            done - finished,
            f"finished; running {waiting.count('Running')}, queued {waiting.count('Queued')}",
        )
        finished = done
        if not waiting:
            return states
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imagenette_repro.experiments.queue_rows",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    queue = commands.add_parser("queue", help="queue rows as DVC experiments")
    queue.add_argument(
        "rows", nargs="*", help="row names, or recipe names (default: the report's 15 rows)"
    )
    queue.add_argument(
        "-S",
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for every row (repeatable)",
    )
    queue.add_argument("--seeds", type=int, nargs="+", help="run each row with these seeds")
    queue.add_argument(
        "--name-suffix",
        default="",
        metavar="TEXT",
        help="name experiments <row>-TEXT (for variants of a row)",
    )
    queue.add_argument(
        "--target",
        dest="targets",
        action="append",
        default=[],
        metavar="STAGE",
        help="run only this stage and what it needs (e.g. evaluate: no export); repeatable",
    )
    queue.add_argument("--run", action="store_true", help="then run the queue and wait")
    queue.add_argument("-j", "--jobs", type=int, default=1, help="parallel DVC workers")
    queue.add_argument(
        "--in-workspace",
        action="store_true",
        help="run the rows one by one in this working tree (resumable), not in DVC's queue",
    )
    queue.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)

    if args.in_workspace and not args.dry_run:
        # The rows' overrides apply to the commit's params, not to a previous run's.
        subprocess.run(["git", "checkout", "-q", "HEAD", "--", "params.yaml"], check=True)
    try:
        params = load_params()
        rows = args.rows or list(params.report_rows)
        seeds = args.seeds or [None]
        planned = [
            (
                row,
                seed,
                queue_command(params, row, args.extra, seed, args.name_suffix, args.targets),
            )
            for row in rows
            for seed in seeds
        ]
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    known = [] if args.dry_run else existing_experiments()
    failed, queued, in_workspace = [], [], []
    for row, seed, command in planned:
        # A duplicate: an experiment whose whole params.yaml equals this one's would-be.
        sets = row_overrides(params, row, args.extra, seed)
        expected = apply_overrides(params.model_dump(), sets)
        if any(values == expected for _, values in known):
            name = experiment_name(row, seed, args.name_suffix)
            print(f"skip {name}: an experiment with these params exists")
            continue
        name = experiment_name(row, seed, args.name_suffix)
        if args.in_workspace:
            command = [part for part in command if part != "--queue"]
        print(" ".join(command), flush=True)
        if args.dry_run:
            continue
        if args.in_workspace:
            in_workspace.append((name, command))
            continue
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        else:
            queued.append(name)
    if failed:
        print(
            f"error: DVC did not queue {', '.join(failed)} (see above; an experiment of "
            "that name with other params? remove it with dvc exp remove)",
            file=sys.stderr,
        )
        return 1
    if args.in_workspace and not args.dry_run:
        for name, command in in_workspace:
            subprocess.run(["git", "checkout", "-q", "HEAD", "--", "params.yaml"], check=True)
            if subprocess.run(command).returncode != 0:
                print(f"error: {name} failed (see above); the same command resumes it")
                return 1
        return 0
    if args.run and not args.dry_run:
        subprocess.run(["dvc", "queue", "start", "-j", str(args.jobs)], check=True)
        states = wait_for_queue(set(queued))
        failed = sorted(name for name in queued if states.get(name) != "Success")
        if failed:
            print(
                f"error: {', '.join(failed)} did not succeed "
                f"({', '.join(states.get(name, 'not in the queue') for name in failed)}); "
                "`dvc queue logs <name>` shows why",
                file=sys.stderr,
            )
            return 1
    return 0


def cli() -> int:
    try:
        return main()
    except subprocess.CalledProcessError as err:
        print(
            f"error: {' '.join(err.cmd)} failed (exit {err.returncode}): "
            f"{(err.stderr or '').strip()}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(cli())
