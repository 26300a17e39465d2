"""The catalogue of experiments (experiments.yaml): named sets of `dvc exp run -S`
overrides, resolved here for the scripts, the queue, the study, the benchmark and the
tests; the one way overrides are applied to params outside DVC; a scratch copy of the
project for a run apart from the working tree.

    python -m imagenette_repro.experiments NAME [NAME ...] [--set key=value ...]

prints the -S arguments, one a line (bash: `mapfile -t args < <(python -m ...)`);
--absolute makes an archive path absolute (for queued runs)."""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ..errors import UserError
from ..params import read_yaml

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE = ROOT / "experiments.yaml"
LARGEST_FILE = 20 << 20  # bytes: stray large files of a working tree are not copied


class CatalogueError(UserError):
    pass


def load_catalogue(path: Path = CATALOGUE) -> dict[str, dict]:
    """The profiles of experiments.yaml, each {"from": [...], "section.key": value, ...}."""
    try:
        catalogue = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise CatalogueError(f"{path}: cannot read the catalogue of experiments: {error}") from None
    if not isinstance(catalogue, dict) or not all(
        isinstance(profile, dict) for profile in catalogue.values()
    ):
        raise CatalogueError(f"{path}: expected a mapping of names to mappings of overrides")
    return catalogue


def overrides(
    names: list[str], catalogue: dict[str, dict] | None = None, absolute_to: Path | None = None
) -> dict[str, object]:
    """The overrides of the profiles `names`, in order (later keys win), each profile after
    the profiles it starts `from`. With `absolute_to`, an archive path is made absolute
    against that folder (a queued run starts in a temporary copy); else it stays as written
    (relative to the repository: what a committed dvc.lock records)."""
    catalogue = load_catalogue() if catalogue is None else catalogue
    resolved: dict[str, object] = {}

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name not in catalogue:
            raise CatalogueError(
                f"experiments.yaml: no profile {name!r}; known: {', '.join(sorted(catalogue))}"
            )
        if name in chain:
            raise CatalogueError(f"experiments.yaml: {' -> '.join((*chain, name))} is a cycle")
        profile = catalogue[name]
        for parent in profile.get("from", []):
            add(parent, (*chain, name))
        resolved.update((key, value) for key, value in profile.items() if key != "from")

    for name in names:
        add(name, ())
    archive = resolved.get("data.archive")
    if absolute_to and isinstance(archive, str) and "/" in archive and "://" not in archive:
        resolved["data.archive"] = str((absolute_to / archive).resolve())
    return resolved


def assignments(values: dict[str, object]) -> list[str]:
    """`key=value` strings of dvc exp run -S (values in YAML: null, true, 0.001)."""
    texts = []
    for key, value in values.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        texts.append(f"{key}={text}")
    return texts


def set_arguments(values: dict[str, object]) -> list[str]:
    """The `-S key=value` arguments of dvc exp run."""
    return [part for text in assignments(values) for part in ("-S", text)]


def apply_overrides(params: dict, sets: list[str]) -> dict:
    """params (a copy) with each dotted `key=value` set, as `dvc exp run -S` sets it."""
    result = copy.deepcopy(params)
    for assignment in sets:
        key, value = assignment.split("=", 1)
        *parents, last = key.split(".")
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = read_yaml(value)
    return result


def write_params(repo: Path, values: dict[str, object]) -> dict:
    """repo's params.yaml with `values` set (dotted keys); returns the params."""
    path = repo / "params.yaml"
    params = apply_overrides(yaml.safe_load(path.read_text()), assignments(values))
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def scratch_copy(work: Path, source: Path = ROOT) -> tuple[Path, dict]:
    """The project's files as they are in `source`'s working tree (tracked and new, not
    ignored) in a new git repository work/project, committed; returns the folder and the
    environment to run git and dvc in (this Python's tools first, the copy's package, no
    analytics)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    repo = work / "project"
    for name in filter(None, files):
        path = source / name
        if path.is_file() and path.stat().st_size < LARGEST_FILE:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, repo / name)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "DVC_STUDIO_OFFLINE": "true",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "scratch",
        "GIT_AUTHOR_EMAIL": "scratch@example.invalid",
        "GIT_COMMITTER_NAME": "scratch",
        "GIT_COMMITTER_EMAIL": "scratch@example.invalid",
    }
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "scratch"],  # dvc exp reads the identity from config
        ["git", "config", "user.email", "scratch@example.invalid"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "project"],
    ):
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    return repo, env


def commit(repo: Path, env: dict, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", message], cwd=repo, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imagenette_repro.experiments", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help="profiles of experiments.yaml")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="one more override"
    )
    parser.add_argument(
        "--absolute", action="store_true", help="the archive path absolute (queued runs)"
    )
    parser.add_argument("--archive", help="another archive than the profiles' (data.archive)")
    parser.add_argument(
        "--md5", help="its md5 (data.md5; with another --archive than the profiles': unchecked)"
    )
    args = parser.parse_args(argv)
    try:
        values = overrides(args.names, absolute_to=ROOT if args.absolute else None)
    except CatalogueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.archive:
        archive = Path(args.archive)
        # The profiles' archive by another path keeps its md5; another archive is unchecked.
        if archive.name != Path(str(values.get("data.archive", ""))).name:
            values["data.md5"] = None
        values["data.archive"] = str(archive.resolve()) if args.absolute else args.archive
    if args.md5:
        values["data.md5"] = args.md5
    for item in args.set:
        key, _, value = item.partition("=")
        values[key] = read_yaml(value)
    print("\n".join(set_arguments(values)))
    return 0
