"""benchmark.json and benchmark.md: a run's figures, the speed goals, the table."""

import json
import sys
import time
from pathlib import Path

from imagenette_repro.files import replacing


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(text)


def checks(report: dict) -> list[dict]:
    """The speed goals, where this run measured what they are about."""
    found = []
    cpu = report["machine"]["device"] == "cpu"
    for r in report["sizes"]:
        size = r["size"]
        wanted = []
        if cpu and size == 64:
            wanted += [
                ("epoch / bare step at 64 px >= 95%", r["epoch_over_step"], 0.95),
                ("epoch / plain baseline at 64 px >= 1.4x", r["epoch_over_baseline"], 1.4),
            ]
        if cpu and size == 32:
            wanted.append(
                ("epoch / plain baseline at 32 px >= 1.3x", r["epoch_over_baseline"], 1.3)
            )
        if cpu and size == 224 and r.get("peak_fraction"):
            wanted.append(("bare step at 224 px >= 50% of FP32 peak", r["peak_fraction"], 0.5))
        if not cpu and size == 224:
            wanted.append(("epoch / plain baseline at 224 px >= 5x", r["epoch_over_baseline"], 5))
        found += [
            {"target": name, "value": round(value, 3), "met": value >= bound}
            for name, value, bound in wanted
        ]
    return found


def save(report: dict, args, argv, started: float, complete: bool) -> None:
    """benchmark.json and benchmark.md (atomically), after every size and at the end."""
    report["complete"] = complete
    report["checks"] = checks(report)
    report["seconds"] = time.perf_counter() - started
    command = argv if argv is not None else sys.argv[1:]
    report["command"] = "python bench/benchmark.py " + " ".join(map(str, command))
    write_atomic(args.out / "benchmark.json", json.dumps(report, indent=2) + "\n")
    write_atomic(args.out / "benchmark.md", markdown(report))


def markdown(report: dict) -> str:
    m, lines = report["machine"], []
    where = m.get("gpu", m["cpu"])
    lines += [
        f"# Benchmark: {report['network']}, batch {report['batch_size']}, {where}",
        "",
        f"Machine: {m['cpu']}, {m['cpu_cores']} cores ({', '.join(m['cpu_simd'])}), "
        f"{m['memory_gib']} GiB; torch {m['torch']} ({m['torch_threads']} threads), "
        f"device {m['device']}" + (f" ({m['gpu']})" if "gpu" in m else "") + ".",
        f"Runtime: {report['runtime']}. Data: {report['archive']} "
        f"({report['distinct_images']} distinct images, repeated as needed).",
        f"Peak assumed: {report['peak']['how']}.",
        "",
        "| size | project epoch img/s | plain baseline img/s | ratio | bare step img/s "
        "| epoch / step | GFLOP/img | GFLOP/s | % of peak | baseline loader alone img/s "
        "| decode once img/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["sizes"]:
        peak = f"{100 * r['peak_fraction']:.0f}%" if r.get("peak_fraction") else "-"
        lines.append(
            f"| {r['size']} px | {r['epoch']['images_per_s']:.1f} "
            f"| {r['baseline']['images_per_s']:.1f} | {r['epoch_over_baseline']:.2f}x "
            f"| {r['step']['images_per_s']:.1f} | {100 * r['epoch_over_step']:.0f}% "
            f"| {r['gflop_per_image']:.2f} | {r['achieved_gflops']:.1f} | {peak} "
            f"| {r['baseline']['loader_only_images_per_s']:.1f} "
            f"| {r['decode_once_images_per_s']:.0f} |"
        )
    switches = [(r["size"], s) for r in report["sizes"] for s in r.get("switches", [])]
    if switches:
        lines += [
            "",
            "Bare step with one switch flipped:",
            "",
            "| size | switch | img/s | vs default |",
            "|---|---|---|---|",
        ]
        for size, s in switches:
            if "error" in s:
                lines.append(f"| {size} px | {s['switch']} | failed: {s['error'][:80]} | - |")
            else:
                lines.append(
                    f"| {size} px | {s['switch']} | {s['images_per_s']:.1f} "
                    f"| {s['vs_default']:.2f}x |"
                )
    d = report.get("dvc")
    if d and "skipped" not in d:
        lines += [
            "",
            f"DVC ({d['archive']}, {d['settings']}): full `dvc repro` {d['repro_s']:.1f} s "
            f"({len(d['repro_stages'])} stages); then `dvc exp run -S optimizer=adam` "
            f"{d['exp_run_adam_s']:.1f} s ({', '.join(d['exp_run_stages'])}): "
            f"{100 * d['exp_over_repro']:.0f}% of the repro.",
        ]
    elif d and "error" in d:
        lines += ["", f"DVC: failed: {d['error'][-300:]}"]
    elif d:
        lines += ["", f"DVC: skipped ({d['skipped']})."]
    if report["checks"]:
        lines += ["", "Targets (the speed goals):", ""]
        lines += [
            f"- {c['target']}: {c['value']:.2f} ({'met' if c['met'] else 'NOT met'})"
            for c in report["checks"]
        ]
    if not report["complete"]:
        lines += ["", "**Incomplete**: the run stopped before the end."]
    lines += ["", f"Command: `{report['command']}`; {report['seconds']:.0f} s in all.", ""]
    return "\n".join(lines)
