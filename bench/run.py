"""``python -m bench.run [--quick] [options]``: the benchmark (`make bench`, `make bench-quick`).

The plan of a mode (full or quick) lists every run; the options that select scenes,
methods or parts choose which of them to run now. Finished runs are cached in
bench/work/runs/, so the results written at the end always cover the whole plan with every
run finished so far (by this call or an earlier one), and say which are still missing.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys

from .runner import NETWORKS, REPO, Context, RunSpec, execute, is_current, load_cached, run_key, save_cached
from .scenes import DATA_VARIABLE, data_folder

QUICK_ANOMALY = ("abu-airport-1", "abu-airport-4", "abu-urban-1")
QUICK_CHANGE = ("taizhou*",)
# The quick mode's short training budget (the only departure from the defaults anywhere).
QUICK_BUDGET = {"bs3lnet": {"iterations": 30, "epochs": 0.0}, "hypernet": {"epochs": 5}}
SCALING_SIZES = (100, 250, 500, 1000)
QUICK_SCALING_SIZES = (100,)
FULL_SIZES = (1000, 3000)
PARTS = ("anomaly", "change", "scaling", "full")


def _list(text: str) -> list:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="one seed, three anomaly scenes, one change pair, the smallest scaling size, short budget")
    p.add_argument("--device", default="auto", help="device of the networks: auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--threads", type=int, help="torch threads per run (default: all cores)")
    p.add_argument("--seeds", type=lambda t: [int(x) for x in _list(t)],
                   help="seeds of the networks (default 1,2,3; quick: 1)")
    p.add_argument("--parts", type=_list, default=list(PARTS), help="parts to run now: anomaly,change,scaling,full")
    p.add_argument("--plan", type=_list, default=list(PARTS),
                   help="parts the plan, and so the results, cover (default all; a partial plan needs its own --out)")
    p.add_argument("--scenes", type=_list, help="run only scenes matching these patterns (e.g. abu-*,taizhou*)")
    p.add_argument("--skip", type=_list, help="do not run scenes matching these patterns now (e.g. sim-mosaic-1000*)")
    p.add_argument("--methods", type=_list, help="run only these methods (rx,bs3lnet,cva,hypernet)")
    p.add_argument("--scaling-sizes", type=lambda t: [int(x) for x in _list(t)],
                   help=f"scene sides of the scaling run (default {','.join(map(str, SCALING_SIZES))}; "
                        f"quick {','.join(map(str, QUICK_SCALING_SIZES))})")
    p.add_argument("--full-sizes", type=lambda t: [int(x) for x in _list(t)],
                   help=f"scene sides of the full-size part (default {','.join(map(str, FULL_SIZES))}; quick: none)")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds after which a run is stopped (default 6 h)")
    p.add_argument("--fresh", action="store_true", help="run the selected runs again even when cached")
    p.add_argument("--no-run", action="store_true", help="run nothing: write the results from the cached runs")
    p.add_argument("--engine-rev", help="benchmark the engine of this commit (e.g. HEAD) instead of the working tree")
    p.add_argument("--nice", type=int, default=0, help="lower the benchmark's priority by this much")
    p.add_argument("--data", default=data_folder(),
                   help=f"folder with anomaly/*.npz and change/*.npz (default ${DATA_VARIABLE}, else ../shared/data)")
    p.add_argument("--work", default=os.path.join(REPO, "bench", "work"), help="cache and prepared inputs")
    p.add_argument("--out", help="results folder (default bench/results, quick: bench/results/quick)")
    args = p.parse_args(argv)
    unknown = (set(args.parts) | set(args.plan)) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s) {', '.join(sorted(unknown))}; use {', '.join(PARTS)}")
    if set(args.plan) != set(PARTS) and not args.out:
        p.error("a partial --plan needs --out: its results would replace the whole benchmark's")
    args.seeds = args.seeds or ([1] if args.quick else [1, 2, 3])
    args.scaling_sizes = args.scaling_sizes or list(QUICK_SCALING_SIZES if args.quick else SCALING_SIZES)
    if args.full_sizes is None:
        args.full_sizes = [] if args.quick else list(FULL_SIZES)
    args.out = args.out or os.path.join(REPO, "bench", "results", *(["quick"] if args.quick else []))
    return args


def budget_overrides(quick: bool) -> dict:
    """The quick mode's short budget, never above the defaults; nothing in full mode."""
    if not quick:
        return {}
    from hsi_detect_engine.parameters import BS3LNET, HYPERNET

    out = {}
    for method, params in (("bs3lnet", BS3LNET), ("hypernet", HYPERNET)):
        defaults = {p.name: p.default for p in params}
        o = {k: v for k, v in QUICK_BUDGET[method].items() if k in defaults}
        if "iterations" in o and not defaults.get("epochs"):
            o.pop("epochs", None)
            o["iterations"] = min(o["iterations"], defaults["iterations"])
        if method == "hypernet" and "epochs" in o:
            o["epochs"] = min(o["epochs"], defaults["epochs"])
        out[method] = {k: v for k, v in o.items() if defaults.get(k) != v}
    return {m: o for m, o in out.items() if o}


def _pick(names: list, patterns) -> list:
    """Names matching the patterns in the patterns' order, else the first len(patterns) names."""
    picked = [n for pat in patterns for n in names if fnmatch.fnmatch(n, pat)]
    return list(dict.fromkeys(picked)) or names[:len(patterns)]


def build_plan(args, scenes: dict, overrides: dict) -> list:
    """[RunSpec] of the whole mode."""
    from .scenes import (anomaly_scenes, change_scenes, full_pair, full_scene, scaling_pair, scaling_scene,
                         simulated_scenes)

    def specs(section, scene, methods, count_flops=False, limit=""):
        out = []
        for m in methods:
            one = section in ("scaling", "full") or m not in NETWORKS
            for seed in ([args.seeds[0]] if one else args.seeds):
                out.append(RunSpec(section, scene.name, m, seed if m in NETWORKS else 1,
                                   tuple(sorted(overrides.get(m, {}).items())), count_flops and m in NETWORKS, limit))
            scenes[scene.name] = scene
        return out

    plan = []
    anomaly = {s.name: s for s in anomaly_scenes(args.data)} if "anomaly" in args.plan else {}
    names = _pick(sorted(anomaly), QUICK_ANOMALY) if args.quick else sorted(anomaly)
    for n in names:
        plan += specs("anomaly", anomaly[n], ("rx", "bs3lnet"))
    change = {}
    if "change" in args.plan:
        change = {s.name: s for s in change_scenes(args.data, args.work)}
        change.update({s.name: s for s in ([] if args.quick else simulated_scenes(args.data, args.work))})
    names = _pick(sorted(change), QUICK_CHANGE) if args.quick else list(change)
    for n in names:
        plan += specs("change", change[n], ("cva", "hypernet"))
    if {"scaling", "full"} & set(args.plan) and scaling_scene(args.data, args.work, args.scaling_sizes[0]) is not None:
        plan.append(RunSpec("matmul", "", "matmul"))  # the floors' and the FLOP rates' measure
    for size in args.scaling_sizes if "scaling" in args.plan else []:
        if scaling_scene(args.data, args.work, size) is not None:
            plan += specs("scaling", scaling_scene(args.data, args.work, size), ("rx", "bs3lnet"), True)
            pair = scaling_pair(args.data, args.work, size)
            if pair is not None:
                plan += specs("scaling", pair, ("cva", "hypernet"), True)
    speed_pair = None if args.quick or "scaling" not in args.plan else scaling_pair(args.data, args.work, 300, bands=200)
    if speed_pair is not None:  # HyperNet's speed figure: a simulated 300 x 300 x 200 pair
        plan += specs("scaling", speed_pair, ("hypernet",), True)
    for size in args.full_sizes if "full" in args.plan else []:
        scene, pair = full_scene(args.data, args.work, size), full_pair(args.data, args.work, size)
        if scene is None or pair is None:
            break
        # at the engine's default memory limit (at most 2 GB), which streams scenes of this size
        plan += specs("full", scene, ("rx", "bs3lnet"), True)
        plan += specs("full", pair, ("cva", "hypernet"), True)
        plan += specs("read", scene, ("read",)) + specs("read", pair, ("read",))
    return plan


def selected(spec: RunSpec, args) -> bool:
    if spec.section == "matmul":
        return bool({"scaling", "full"} & set(args.parts))
    part = "full" if spec.section == "read" else spec.section
    if part not in args.parts:
        return False
    if args.methods and spec.method not in args.methods and spec.section not in ("matmul", "read"):
        return False
    if args.scenes and spec.section != "matmul" and not any(fnmatch.fnmatch(spec.scene, p) for p in args.scenes):
        return False
    if args.skip and any(fnmatch.fnmatch(spec.scene, p) for p in args.skip):
        return False
    return True


def run_order(todo: list) -> list:
    """Part by part, and within a part seed by seed, so that an interrupted benchmark has
    every scene of a part at least once before it repeats any with another seed."""
    order = {"anomaly": 0, "change": 1, "matmul": 2, "scaling": 3, "read": 4, "full": 5}
    return sorted(todo, key=lambda sk: (order[sk[0].section], sk[0].seed))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    os.makedirs(args.work, exist_ok=True)
    from . import machine

    engine_root, engine_rev = REPO, None
    if args.engine_rev:
        engine_rev, engine_root = machine.engine_snapshot(args.engine_rev, args.work)
        sys.path.insert(0, os.path.join(engine_root, "engine"))
    import hsi_detect_engine

    if engine_rev and not os.path.abspath(hsi_detect_engine.__file__).startswith(os.path.abspath(engine_root)):
        raise SystemExit("bench: the engine snapshot could not be imported ahead of the installed engine.")
    source = machine.source_info(engine_rev, engine_root)
    package = os.path.join(engine_root, machine.ENGINE_PACKAGE)
    ctx = Context(args.work, args.device, args.threads, args.timeout,
                  os.path.join(engine_root, "engine") if engine_rev else None, machine.engine_state(package),
                  {"commit": source["commit"]})
    overrides = budget_overrides(args.quick)
    scenes = {}
    plan = [(spec, None) for spec in build_plan(args, scenes, overrides)]
    plan = [(spec, run_key(spec, scenes.get(spec.scene), ctx)) for spec, _ in plan]
    records = {key: r for _, key in plan if (r := load_cached(ctx, key)) is not None}
    todo = [] if args.no_run else run_order([(s, k) for s, k in plan if selected(s, args)
                                             and (args.fresh or k not in records or "error" in records[k])])
    print(f"bench: {len(plan)} runs in the plan, {sum(1 for _, k in plan if k in records and 'error' not in records[k])}"
          f" cached, {len(todo)} to run now (engine {source['commit_short']}"
          f"{' + uncommitted changes' if source['engine_uncommitted_changes'] else ''}).", file=sys.stderr)
    _run_all(todo, scenes, ctx, records)
    # Score only what the code as it is now would give: drop runs whose modules changed meanwhile.
    ctx.engine_sources = machine.engine_state(package)
    source = machine.source_info(engine_rev, engine_root)
    records = {k: r for k, r in records.items() if "error" in r or is_current(r, ctx)}
    source["run_commits"] = sorted({r.get("commit", "")[:7] for r in records.values() if "result" in r})
    from hsi_detect_engine.io.memory import default_memory_limit

    meta = {"date": machine.now(), "source": source, "machine": machine.machine_info(),
            "settings": {"quick": args.quick, "device": args.device, "threads": args.threads, "seeds": args.seeds,
                         "overrides": overrides, "scaling_sizes": args.scaling_sizes, "full_sizes": args.full_sizes,
                         "default_memory_limit": default_memory_limit(), "data": args.data,
                         "command": " ".join(["python -m bench.run"] + (sys.argv[1:] if argv is None else list(argv)))}}
    from .report import _stats, build_results, write_results

    meta["load"] = _stats([x for _, k in plan if k in records for x in
                           (records[k].get("load_before"), records[k].get("load_after")) if x is not None])
    results = build_results(meta, plan, records, scenes)
    written = write_results(args.out, results, plan, records)
    print(written["markdown"])
    print(f"bench: results in {written['paths']['markdown']} and {written['paths']['json']}, "
          f"{len(written['paths']['roc'])} ROC curves in {os.path.join(args.out, 'roc')}", file=sys.stderr)
    return 0 if not results["runs_failed"] else 1


def _run_all(todo: list, scenes: dict, ctx: Context, records: dict):
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="run", file=sys.stderr, dynamic_ncols=True)
    try:
        for spec, key in todo:
            bar.set_description(spec.label)
            scene = scenes.get(spec.scene)
            if scene is not None and scene.make is not None:
                bar.set_postfix_str("preparing the input")
                scene.make()

            def on_event(e):
                loss = f" loss {e['loss']:.4g}" if "loss" in e else ""
                bar.set_postfix_str(f"{e.get('stage')} {100 * e.get('fraction', 0):.0f}%{loss}")

            record = execute(spec, scene, ctx, on_event)
            save_cached(ctx, key, record)
            records[key] = record
            if "error" in record:
                tqdm.write(f"bench: {spec.label} failed: {record['error']}", file=sys.stderr)
            bar.update(1)
    finally:
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
