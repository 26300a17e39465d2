"""The report at its own settings in one run on a remote GPU host (through gpu_reproduce.sh).

Puts the real archive back together from the parts the commands uploaded (checking
each part's sha256 and the whole's), makes a scratch git+DVC copy of this project set to
that archive, runs the shared stages once, then runs, as DVC experiments through
`python -m imagenette_repro.experiments.queue_rows queue ... --run`, in this order of value:

 1. network_84_8153 at the report's settings (the headline row);
 2. the same with Glorot init (does R2018b's N(0, 0.01) train at 224 px?);
 3. network_82_828 (the report's ADAM row, same layers), and network_84_8153 without
    augmentation (conclusions 3 and 2 at the report's scale);
 4. a short benchmark (bench/benchmark.py: whole-epoch img/s against the plain baseline,
    the bare step's share of peak, the step with each speed switch flipped: bf16,
    channels_last, torch.compile, ...);
 5. the other rows by falling report accuracy, while the time limit allows.

After every step it writes what it has to --out (at most 8 files: what the remote host
returns): exp_show.json, report_comparison.{md,csv}, timings.json,
benchmark.{json,md}, and gpu_reproduce.log (by the .sh). A step that would not finish
before --limit is skipped; one still running at the limit is stopped. GoogLeNet: from
--googlenet-weights when given, else one cheap epoch from random init (not the report's
fine-tuning; evaluate says so).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from imagenette_repro.experiments.catalogue import apply_overrides, assignments, overrides
from imagenette_repro.files import replacing
from imagenette_repro.params import Params, load_params

ROOT = Path(__file__).resolve().parents[1]

HEADLINE = "network_84_8153"
REAL_ARCHIVE = "imagenette2-224.tgz"
REAL_MD5 = overrides(["real-images"])["data.md5"]  # experiments.yaml
RESULT_FILES = ("report_comparison.md", "report_comparison.csv")
RESERVE_S = 20  # kept back at the end for writing the results


@dataclass
class Step:
    name: str
    why: str
    row: str | None = None  # None: the benchmark
    overrides: tuple[str, ...] = ()
    suffix: str = ""


def plan(params: Params) -> list[Step]:
    """The steps in order of value (module docstring)."""
    steps = [
        Step(HEADLINE, "the headline row at the report's settings", HEADLINE),
        Step(
            f"{HEADLINE}-glorot",
            "the init question: Glorot instead of R2018b's N(0, 0.01)",
            HEADLINE,
            tuple(assignments(overrides(["glorot-init"]))),  # experiments.yaml
            "glorot",
        ),
        Step(
            "network_82_828", "conclusion 3: the report's ADAM row, same layers", "network_82_828"
        ),
        Step(
            f"{HEADLINE}-noaug",
            "conclusion 2: the headline row without augmentation",
            HEADLINE,
            tuple(assignments(overrides(["study-no-aug"]))),  # the study's arm
            "noaug",
        ),
        Step("benchmark", "whole-epoch img/s vs the plain baseline; the step's share of peak"),
    ]
    done = {step.row for step in steps if step.row and not step.overrides}
    rows = params.report_rows
    rest = sorted((r for r in rows if r not in done), key=lambda r: -rows[r].accuracy)
    return steps + [Step(r, "a further row, by falling report accuracy", r) for r in rest]


def fits(left: float, estimate: float) -> bool:
    """Whether a step estimated at `estimate` seconds (0: not known yet) is started with
    `left` seconds to go: a step that cannot finish returns nothing, so it is skipped."""
    return left > 0 and left >= estimate


def log(message: str) -> None:
    print(f"[gpu_reproduce {time.strftime('%H:%M:%S')}] {message}", flush=True)


def assemble(parts_dir: Path, name: str, target: Path) -> Path:
    """The archive `name` from its parts in parts_dir, each part and the whole checked
    against parts_dir/<name>.sha256sums (scripts/gpu_data_parts.sh)."""
    sums = parts_dir / f"{name}.sha256sums"
    if not sums.is_file():
        raise SystemExit(f"error: {sums}: missing (made by scripts/gpu_data_parts.sh)")
    expected = {}
    for line in sums.read_text().splitlines():
        digest, file = line.split(maxsplit=1)
        expected[file.strip()] = digest
    parts = sorted(file for file in expected if file != name)
    missing = [file for file in parts if not (parts_dir / file).is_file()]
    if missing:
        raise SystemExit(
            f"error: {parts_dir}: missing {', '.join(missing)} (each command to the GPU "
            "host uploads one part; docs/gpu.md gives the commands)"
        )
    whole = hashlib.sha256()
    with replacing(target) as tmp, open(tmp, "wb") as out:  # no half-assembled archive
        for file in parts:
            data = (parts_dir / file).read_bytes()
            if hashlib.sha256(data).hexdigest() != expected[file]:
                raise SystemExit(f"error: {parts_dir / file}: sha256 differs (a broken copy)")
            whole.update(data)
            out.write(data)
        if whole.hexdigest() != expected.get(name):
            raise SystemExit(f"error: {name} put together from {len(parts)} parts: sha256 differs")
    log(f"{target}: {len(parts)} parts, {target.stat().st_size} bytes, sha256 checked")
    return target


def _ignored(folder: str, names: list[str]) -> set[str]:
    """What the scratch copy leaves out: git, environments, the parts, results and every
    pipeline output (the copy starts cold)."""
    relative = Path(folder).resolve().relative_to(ROOT)
    skip = {"__pycache__", ".pytest_cache", ".ruff_cache"}
    if relative == Path("."):
        skip |= {".git", ".venv", ".whl", ".gpu", ".gl", "results", "dvc.lock"}
    elif relative.parts[0] == "data":
        skip |= {name for name in names if name != ".gitignore"}
    elif relative == Path(".dvc"):
        skip |= {"cache", "tmp"}
    return {name for name in names if name in skip or name.endswith(".egg-info")}


def run(command: list[str], cwd: Path, timeout: float | None = None) -> int:
    """Run a command in its own process group; at the timeout, stop the whole group
    (SIGINT, then SIGKILL) and return 124."""
    log("$ " + shlex.join(command))
    process = subprocess.Popen(command, cwd=cwd, start_new_session=True)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"stopped at the time limit: {shlex.join(command[:6])} ...")
        for sig, grace in ((signal.SIGINT, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=grace)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        return 124


def stop_queue(project: Path) -> None:
    """Stop DVC's queue worker and every process still running in the project (a queued
    experiment's stage runs in a process DVC's own kill leaves behind)."""
    try:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=project, timeout=15)
    except subprocess.TimeoutExpired:
        log("dvc queue stop --kill did not answer in 15 s")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            inside = Path(os.readlink(proc / "cwd")).is_relative_to(project)
        except OSError:
            continue
        if inside:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                log(f"killed process {proc.name}, left running in {project}")
            except ProcessLookupError:
                pass


def make_project(work: Path, params_changes: list[str]) -> Path:
    """A git repository holding this project at the run's settings, committed."""
    project = work / "project"
    shutil.copytree(ROOT, project, ignore=_ignored)
    path = project / "params.yaml"
    params = apply_overrides(yaml.safe_load(path.read_text()), params_changes)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "gpu-reproduce"],
        ["git", "config", "user.email", "gpu-reproduce@example.invalid"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "the report's settings on the real images"],
    ):
        subprocess.run(command, cwd=project, check=True, capture_output=True)
    return project


def write_results(project: Path, out: Path, timings: dict) -> None:
    """exp_show.json, the comparison and the conclusions, timings.json: all finished so
    far, each file replaced whole."""
    shown = subprocess.run(
        ["dvc", "exp", "show", "--json"], cwd=project, capture_output=True, text=True
    )
    if shown.returncode == 0:
        with replacing(out / "exp_show.json") as tmp:
            tmp.write_text(shown.stdout)
        with tempfile.TemporaryDirectory() as folder:
            report = subprocess.run(
                [sys.executable, "-m", "imagenette_repro.report.comparison", "--input"]
                + [str(out / "exp_show.json"), "--out", folder],
                cwd=project,
                capture_output=True,
                text=True,
            )
            if report.returncode == 0:
                for name in RESULT_FILES:
                    with replacing(out / name) as tmp:
                        shutil.copy(Path(folder) / name, tmp)
            else:
                log(f"no comparison yet: {report.stderr.strip()}")
    with replacing(out / "timings.json") as tmp:
        tmp.write_text(json.dumps(timings, indent=2) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bash scripts/gpu_reproduce.sh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--parts", type=Path, default=ROOT / ".gpu", help="default: .gpu")
    parser.add_argument("--archive", type=Path, help="an archive here, instead of parts")
    parser.add_argument("--name", default=REAL_ARCHIVE, help=f"default: {REAL_ARCHIVE}")
    parser.add_argument("--md5", default=REAL_MD5, help="the archive's md5 (data.md5)")
    parser.add_argument("--googlenet-weights", default="none")
    parser.add_argument("--device", default="auto", help="runtime.device (default: auto)")
    parser.add_argument("--limit", type=float, default=480, help="seconds in all (480)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu-reproduce")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temp one)")
    parser.add_argument(
        "-S", "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="a params override for every step (a smoke run: tiny settings)",
    )  # fmt: skip
    parser.add_argument(
        "--bench-args",
        default="--sizes 224 --batches 20 --step-batches 10 --switches --peak-gflops 989000",
        help="bench/benchmark.py's options (peak: the H100/H200's dense bf16 989 TFLOP/s)",
    )
    parser.add_argument("--bench-limit", type=float, default=150, help="seconds (150)")
    parser.add_argument(
        "--steps",
        help="comma-separated step names to run, in plan order (default: all; e.g. the "
        "rows a run cut short did not reach)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.limit
    args.out.mkdir(parents=True, exist_ok=True)
    missing = [tool for tool in ("git", "dvc") if shutil.which(tool) is None]
    if missing:
        why = f"{' and '.join(missing)} not found (send .whl along: scripts/gpu_wheels.sh)"
        (args.out / "timings.json").write_text(json.dumps({"error": why}) + "\n")
        log(f"error: {why}")
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-reproduce-"))
    work.mkdir(parents=True, exist_ok=True)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    if args.archive:
        archive = args.archive.resolve()
    else:
        archive = assemble(args.parts, args.name, work / args.name)
    weights = weights_file = args.googlenet_weights
    if weights not in ("none", "imagenet"):  # the pretrained stage reads it from weights/
        weights_file = Path(weights).resolve()
        weights = f"weights/{weights_file.name}"
    changes = [
        f"data.archive={archive}",
        f"data.md5={args.md5}",
        f"runtime.device={args.device}",
        f"googlenet.weights={weights}",
    ]
    if weights == "none":  # no ImageNet weights: one cheap epoch, so that evaluate runs
        changes += ["googlenet.max_epochs=1", "googlenet.batch_size=128"]
    project = make_project(work, changes + args.sets)
    if isinstance(weights_file, Path):
        shutil.copyfile(weights_file, project / weights)
    params = load_params(project / "params.yaml")
    timings = {
        "device": device,
        "torch": torch.__version__,
        "archive": archive.name,
        "limit_s": args.limit,
        "settings": changes + args.sets,
        "steps": [],
    }
    log(f"device: {device}; project: {project}; limit {args.limit:.0f} s")

    t = time.monotonic()
    rc = run(["dvc", "repro", "finetune_googlenet"], project, deadline - t - RESERVE_S)
    if rc == 124:
        stop_queue(project)
    timings["shared_stages_s"] = round(time.monotonic() - t, 1)
    if rc != 0:
        timings["shared_stages_exit"] = rc
        write_results(project, args.out, timings)
        log("the shared stages (download, split, prepare, GoogLeNet) failed")
        return 1
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "shared stages"], cwd=project, check=True)

    per_pixel = None  # seconds per experiment per 224x224 image area, from the last one
    chosen = args.steps.split(",") if args.steps else None
    steps = [step for step in plan(params) if chosen is None or step.name in chosen]
    unknown = set(chosen or ()) - {step.name for step in steps}
    if unknown:
        raise SystemExit(f"error: --steps: unknown {', '.join(sorted(unknown))}")
    for step in steps:
        record = {**asdict(step), "status": "skipped: not enough time left", "seconds": 0}
        timings["steps"].append(record)
        left = deadline - time.monotonic() - RESERVE_S
        if step.row is None:
            budget = min(args.bench_limit, left)
            if budget < 30:
                continue
            t = time.monotonic()
            command = [sys.executable, "bench/benchmark.py", str(archive), "--device"]
            command += ["cpu" if args.device == "cpu" else "cuda", "--no-dvc", "--out"]
            command += [str(args.out), *shlex.split(args.bench_args)]
            rc = run(command, ROOT, budget)
        else:
            size = params.network_input_size(step.row)
            if "data.input_size" in " ".join(args.sets):
                size = params.data.input_size
            estimate = per_pixel * (size / 224) ** 2 if per_pixel else 0
            if not fits(left, estimate):
                log(f"skip {step.name}: {left:.0f} s left, it takes about {estimate:.0f} s")
                continue
            command = [
                sys.executable,
                "-m",
                "imagenette_repro.experiments.queue_rows",
                "queue",
                step.row,
            ]
            for override in (*step.overrides, *args.sets):
                command += ["-S", override]
            if step.suffix:
                command += ["--name-suffix", step.suffix]
            command += ["--target", "evaluate", "--run", "-j", "1"]  # no export copies
            t = time.monotonic()
            rc = run(command, project, left)
            if rc == 124:
                stop_queue(project)
            else:
                per_pixel = (time.monotonic() - t) / (size / 224) ** 2
        record.update(
            status={0: "done", 124: "cut short at the time limit"}.get(rc, f"failed (exit {rc})"),
            seconds=round(time.monotonic() - t, 1),
        )
        timings["total_s"] = round(time.monotonic() - started, 1)
        write_results(project, args.out, timings)
        log(f"{step.name}: {record['status']} after {record['seconds']} s ({step.why})")
    timings["total_s"] = round(time.monotonic() - started, 1)
    write_results(project, args.out, timings)
    done = [s["name"] for s in timings["steps"] if s["status"] == "done"]
    log(f"finished in {timings['total_s']} s: {', '.join(done) or 'nothing'}")
    return 0 if done else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
