"""`dvc push` / `dvc pull` with the remote checked first and a failed pull explained.

    python -m imagenette_repro.experiments.remote push|pull [-r NAME] [DVC ARGS...]
    (make push, make pull)

DVC's own messages for a bad local remote do not name it: a missing folder reads "Is your
cache up to date?", and a file corrupted on the remote is refused (with `verify = true`,
as .dvc/config sets for the default remote) with the same words. This names the remote,
its folder, and each object that is missing or corrupt there, with the output it belongs
to. DVC does the transfer; it checks out no output whose files did not all arrive, so a
failed pull leaves nothing half-written in the workspace. Remotes with a URL scheme (s3://,
gs://, ssh://) go to DVC unchecked.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dvc.repo import Repo

from ..errors import UserError
from ..stage_io import file_hash

SHOWN = 5  # problems listed one by one; the rest are counted


class RemoteError(UserError):
    """The remote cannot be used: the message names it and what to do."""


def default_remote(repo: Repo, name: str | None = None) -> tuple[str, str]:
    """The remote's name and URL (a local folder made absolute by DVC's config)."""
    name = name or repo.config["core"].get("remote")
    if not name:
        raise RemoteError("no DVC remote is set: dvc remote add -d NAME URL (README, Share)")
    remotes = repo.config["remote"]
    if name not in remotes:
        raise RemoteError(f"no DVC remote named {name!r}; there are: {', '.join(remotes)}")
    return name, remotes[name]["url"]


def local_folder(url: str) -> Path | None:
    """The folder of a local remote; None for a remote with a URL scheme."""
    if "://" in url and not url.startswith("file://"):
        return None
    return Path(url.removeprefix("file://"))


def check_writable(name: str, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise RemoteError(
            f"dvc remote {name!r}: cannot write to {folder} ({err.strerror or err}). "
            f"Point it at a folder you can write: dvc remote modify --local {name} url PATH"
        ) from None


def check_readable(name: str, folder: Path) -> None:
    if not folder.is_dir():
        raise RemoteError(
            f"dvc remote {name!r}: folder {folder} does not exist. Push to it first from "
            "the clone that ran the pipeline (make push), or point it at your team's "
            f"folder: dvc remote modify --local {name} url PATH"
        )


def objects(repo: Repo, remote_name: str) -> Iterator[tuple[str, str]]:
    """(what, problem) for each cached output's object the local remote `remote_name`
    cannot give: missing there, or there with other contents. A directory's listing is
    read from the cache or, checked, from the remote. Where an object lies, in the cache
    and on the remote, DVC says (oid_to_path)."""
    cache = repo.cache.local
    remote = repo.cloud.get_remote_odb(remote_name)

    def object_path(odb, md5: str) -> Path:
        return Path(odb.oid_to_path(md5))

    for out in repo.index.outs:
        if not out.use_cache or not out.hash_info or not out.hash_info.value:
            continue
        md5, name = out.hash_info.value, str(out.def_path)
        entries = [(name, md5)]
        if out.hash_info.isdir:
            listing = object_path(cache, md5)
            if not listing.is_file():
                listing = object_path(remote, md5)
                problem = remote_problem(listing, md5.removesuffix(".dir"))
                if problem:
                    yield f"{name} (its file list)", problem
                    continue
            entries = [
                (f"{name}/{entry['relpath']}", entry["md5"])
                for entry in json.loads(listing.read_text())
            ]
        for what, entry_md5 in entries:
            if object_path(cache, entry_md5).is_file():
                continue
            problem = remote_problem(object_path(remote, entry_md5), entry_md5)
            if problem:
                yield what, problem


def remote_problem(path: Path, md5: str) -> str | None:
    if not path.is_file():
        return f"missing on the remote ({path})"
    found = file_hash(path, "md5")
    if found != md5:
        return f"corrupt on the remote: {path} has md5 {found}, expected {md5}"
    return None


def explain_failed_pull(repo: Repo, name: str, folder: Path) -> str:
    problems = [f"{what}: {problem}" for what, problem in objects(repo, name)]
    if not problems:
        return f"dvc pull from remote {name!r} ({folder}) failed (DVC's message above)"
    listed = "\n  ".join(problems[:SHOWN])
    more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return (
        f"dvc pull from remote {name!r} ({folder}): {len(problems)} file(s) it cannot give; "
        f"the outputs holding them were not checked out:\n  {listed}{more}\n"
        "Push them again from a clone that has them (make push), or re-run the stages "
        "that make them (dvc repro)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("push", "pull"))
    parser.add_argument("-r", "--remote", help="remote name (default: the project's)")
    args, dvc_args = parser.parse_known_args(argv)
    try:
        repo = Repo(".")
        name, url = default_remote(repo, args.remote)
        folder = local_folder(url)
        if folder is not None:
            if args.command == "push":
                check_writable(name, folder)
            else:
                check_readable(name, folder)
        command = ["dvc", args.command, "-r", name, *dvc_args]
        print("$ " + " ".join(command), flush=True)
        if subprocess.run(command).returncode == 0:
            return 0
        if args.command == "pull" and folder is not None:
            raise RemoteError(explain_failed_pull(repo, name, folder))
        raise RemoteError(f"dvc {args.command} with remote {name!r} ({url}) failed (above)")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
