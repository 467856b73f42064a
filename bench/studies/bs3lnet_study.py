"""BS3LNet studies: AUC against training time, input scaling, blind spots drawn once or anew,
scoring, and the defaults on every scene (mean of 3 seeds, global RX beside it).

    python -m bench.studies.bs3lnet_study run STUDY [--workers 2]  # appends to bench/results/studies/bs3lnet_STUDY.jsonl
    python -m bench.studies.bs3lnet_study report                   # writes bench/results/studies/bs3lnet_tables.md

Each job is one training run in its own process with one thread (two side by side on
this 2-core machine), scored at several checkpoints; jobs already in the results file
are skipped, so an interrupted study resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from .. import published as pub
from ..runner import REPO
from . import bs3lnet_common as common

RESULTS = os.path.join(REPO, "bench", "results", "studies")
FIVE = list(common.PUBLISHED)
CHECKPOINTS = [10, 20, 35, 50, 75, 100]


def jobs(study: str) -> list:
    """(scene, overrides, seed, checkpoints, score_rounds) of every run in a study."""
    out = []
    if study == "scaling":  # raw vs per-band standardisation vs global [0, 1], paper settings otherwise
        for scaling in ("none", "standardize", "minmax"):
            out += [(s, {"scaling": scaling}, 1, CHECKPOINTS, [0, 1]) for s in FIVE]
    elif study == "score":  # other scores of the same residual (computed at every checkpoint by curve())
        out += [(s, {"scaling": "standardize"}, 1, [0] + CHECKPOINTS, [0]) for s in FIVE]
    elif study == "lr":  # learning rate, standardised input
        for lr in (3e-4, 1e-3):
            out += [(s, {"scaling": "standardize", "learning_rate": lr}, 1, CHECKPOINTS, [0]) for s in FIVE]
    elif study == "budget":  # longer training, standardised input
        out += [(s, {"scaling": "standardize"}, 1, CHECKPOINTS + [150, 200, 300], [0]) for s in FIVE]
    elif study == "redraw":  # blind spots drawn once per pixel (the authors' code), over several epochs;
        # its counterpart drawn anew is the budget study
        out += [(s, {"scaling": "standardize", "redraw": False}, 1, CHECKPOINTS + [150, 200, 300], [0])
                for s in FIVE]
    elif study == "defaults":  # every scene, 3 seeds, the defaults as they stand (all written out in the key)
        from hsi_detect_engine.parameters import BS3LNET, resolve

        p = resolve(BS3LNET, {})
        out += [(s, p, seed, [p["iterations"]], [0]) for seed in (1, 2, 3) for s in common.all_scenes()]
    else:
        raise SystemExit(f"unknown study {study}")
    return out


def _mean(values):
    return sum(values) / len(values) if values else float("nan")


def curve_table(rows: list, title: str, match: dict, scenes=FIVE, score="mse", rounds=0) -> str:
    """AUC per scene at each checkpoint of the runs whose overrides equal ``match``."""
    sel = [r for r in rows if json.loads(r["key"])[1] == match and r.get("score", "mse") == score
           and r.get("score_rounds", 0) == rounds]
    if not sel:
        return ""
    its = sorted({r["iterations"] for r in sel})
    head = ["iterations", "epochs (100x100)", "train CPU s (1 thread)"] + list(scenes) + ["mean"]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for it in its:
        at = {r["scene"]: r for r in sel if r["iterations"] == it}
        aucs = [at[s]["auc"] for s in scenes if s in at]
        cpu = [at[s].get("train_cpu_s") for s in scenes if s in at and at[s].get("train_cpu_s") is not None]
        cells = [str(it), f"{it * match.get('batch_size', 100) / 1e4:.2f}",
                 f"{_mean(cpu):.0f}" if cpu else "n/a"]
        cells += [f"{at[s]['auc']:.4f}" if s in at else "" for s in scenes]
        cells.append(f"{_mean(aucs):.4f}" if len(aucs) == len(scenes) else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def defaults_table(rows: list) -> str:
    """Mean and spread over seeds at the current defaults, every scene, with global RX beside it."""
    from hsi_detect_engine.parameters import BS3LNET, resolve

    p = resolve(BS3LNET, {})
    sel = [r for r in rows if json.loads(r["key"])[1] == p and r.get("score", "mse") == p["score"]
           and r.get("score_rounds", 0) == p["score_rounds"]]
    if not sel:
        return ""
    lines = [f"**Defaults ({', '.join(f'{k} {v}' for k, v in p.items())}): AUC, mean of seeds**", "",
             "| scene | BS3LNet mean | min | max | seeds | train CPU s (1 thread) | global RX | published BS3LNet | bar |",
             "|---|---|---|---|---|---|---|---|---|"]
    means = {}
    for scene in common.all_scenes():
        runs = [r for r in sel if r["scene"] == scene]
        if not runs:
            continue
        aucs = [r["auc"] for r in runs]
        means[scene] = _mean(aucs)
        published = common.PUBLISHED.get(scene)
        bar = "" if published is None else ("ok" if means[scene] >= published - pub.BS3LNET_MARGIN else "BELOW")
        lines.append(f"| {scene} | {means[scene]:.4f} | {min(aucs):.4f} | {max(aucs):.4f} | {len(aucs)} | "
                     f"{_mean([r.get('train_cpu_s', 0) for r in runs]):.0f} | {common.rx_auc(scene):.4f} | "
                     f"{'' if published is None else f'{published:.4f}'} | {bar} |")
    five = [means[s] for s in FIVE if s in means]
    if len(five) == len(FIVE):
        lines.append(f"| **mean of the five** | **{_mean(five):.4f}** | | | | | "
                     f"{_mean([common.rx_auc(s) for s in FIVE]):.4f} | {_mean(list(common.PUBLISHED.values())):.4f} | "
                     f"{'ok' if _mean(five) >= pub.BS3LNET_MEAN_AUC else 'BELOW'} (>= {pub.BS3LNET_MEAN_AUC}) |")
    lines.append(f"| mean of all {len(means)} scenes | {_mean(list(means.values())):.4f} | | | | | "
                 f"{_mean([common.rx_auc(s) for s in means]):.4f} | | |")
    return "\n".join(lines) + "\n"


def report():
    from hsi_detect_engine.parameters import BS3LNET  # noqa: F401

    out = ["# BS3LNet study tables (generated by python -m bench.studies.bs3lnet_study report)", ""]
    scaling = common.read_jsonl(os.path.join(RESULTS, "bs3lnet_scaling.jsonl"))
    for mode in ("none", "standardize", "minmax"):
        out.append(curve_table(scaling, f"scaling = {mode}, lr 1e-4, batch 100, score mse", {"scaling": mode}))
        out.append(curve_table(scaling, f"scaling = {mode}, scored in blind passes (score_rounds 1)",
                               {"scaling": mode}, rounds=1))
    score = common.read_jsonl(os.path.join(RESULTS, "bs3lnet_score.jsonl"))
    for variant in ("mse", "mse_input_units", "bandnorm", "rx"):
        out.append(curve_table(score, f"scaling = standardize, residual scored by {variant}", {"scaling": "standardize"},
                               score=variant))
    lr = common.read_jsonl(os.path.join(RESULTS, "bs3lnet_lr.jsonl"))
    for rate in (3e-4, 1e-3):
        out.append(curve_table(lr, f"scaling = standardize, lr {rate:g}, score mse",
                               {"scaling": "standardize", "learning_rate": rate}))
    budget = common.read_jsonl(os.path.join(RESULTS, "bs3lnet_budget.jsonl"))
    redraw = common.read_jsonl(os.path.join(RESULTS, "bs3lnet_redraw.jsonl"))
    for variant in ("mse", "mse-scaled", "rx"):
        out.append(curve_table(budget, f"scaling = standardize, blind spots drawn anew for every batch, score {variant}",
                               {"scaling": "standardize"}, score=variant))
    out.append(curve_table(redraw, "scaling = standardize, blind spots drawn once per pixel, score mse",
                           {"scaling": "standardize", "redraw": False}))
    out.append(defaults_table(common.read_jsonl(os.path.join(RESULTS, "bs3lnet_defaults.jsonl"))))
    text = "\n".join(x for x in out if x)
    with open(os.path.join(RESULTS, "bs3lnet_tables.md"), "w") as f:
        f.write(text)
    print(text)


def key(scene, overrides, seed):
    return json.dumps([scene, overrides, seed], sort_keys=True)


def run_job(args):
    scene, overrides, seed, checkpoints, rounds, path = args
    cmd = [sys.executable, "-m", "bench.studies.bs3lnet_study", "job", scene, json.dumps(overrides), str(seed),
           ",".join(map(str, checkpoints)), ",".join(map(str, rounds)), path]
    subprocess.run(cmd, check=False, cwd=REPO)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.studies.bs3lnet_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("study")
    r.add_argument("--workers", type=int, default=2)
    j = sub.add_parser("job")
    for name in ("scene", "overrides", "seed", "checkpoints", "rounds", "path"):
        j.add_argument(name)
    sub.add_parser("report")
    a = ap.parse_args(argv)
    if a.cmd == "job":
        common.set_threads(1)
        rows = common.curve(a.scene, json.loads(a.overrides), int(a.seed),
                            [int(x) for x in a.checkpoints.split(",")], [int(x) for x in a.rounds.split(",")])
        for row in rows:
            row["key"] = key(a.scene, json.loads(a.overrides), int(a.seed))
        common.append_jsonl(a.path, rows)
    elif a.cmd == "report":
        report()
    elif a.cmd == "run":
        path = os.path.join(RESULTS, f"bs3lnet_{a.study}.jsonl")
        done = {row.get("key") for row in common.read_jsonl(path)}
        todo = [(s, o, seed, c, rr, path) for s, o, seed, c, rr in jobs(a.study) if key(s, o, seed) not in done]
        print(f"{len(todo)} runs to do")
        with ThreadPoolExecutor(a.workers) as ex:
            list(ex.map(run_job, todo))


if __name__ == "__main__":
    main()
