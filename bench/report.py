"""Turning run records into the results: a JSON document, a Markdown table, ROC curves."""

from __future__ import annotations

import json
import math
import os
from typing import Optional

import numpy as np

from . import published as pub
from .runner import NETWORKS

METRICS = ("auc", "oa", "kappa", "f1", "precision", "recall")
NAMES = {"rx": "RX", "bs3lnet": "BS3LNet", "cva": "CVA", "hypernet": "HyperNet"}
MiB = 1024 ** 2


def _stats(values: list) -> Optional[dict]:
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "sd": sd, "min": min(values), "max": max(values), "n": len(values),
            "values": values}


def aggregate(records: list) -> dict:
    """Mean and spread over the seeds of one (scene, method)."""
    done = [r for r in records if r and "result" in r and "error" not in r]
    out = {"runs": len(records), "done": len(done), "seeds": [r["spec"]["seed"] for r in done],
           "errors": [r["error"] for r in records if r and "error" in r]}
    for m in METRICS:
        s = _stats([r.get("metrics", {}).get(m) for r in done])
        if s:
            out[m] = s
    out["seconds"] = _stats([r["result"]["seconds"] for r in done])
    out["peak_rss_bytes"] = _stats([r["peak_rss_bytes"] for r in done])
    gpu = _stats([r["result"].get("gpu_peak_bytes") for r in done])
    if gpu:
        out["gpu_peak_bytes"] = gpu
    stages = {}
    for r in done:
        for k, v in r["result"].get("stage_seconds", {}).items():
            stages.setdefault(k, []).append(v)
    out["stage_seconds"] = {k: _stats(v)["mean"] for k, v in stages.items()}
    flops = [r["result"].get("flops") for r in done if r["result"].get("flops")]
    if flops:
        out["flops"] = {k: _stats([f.get(k) for f in flops])["mean"] for k in flops[0] if
                        _stats([f.get(k) for f in flops])}
    load = [x for r in done for x in (r.get("load_before"), r.get("load_after")) if x is not None]
    out["load"] = _stats(load)
    return out


def build_results(meta: dict, plan: list, records: dict, scenes: dict) -> dict:
    """plan: [(RunSpec, key)]; records: key -> record (or missing); scenes: name -> Scene."""
    groups = {}
    for spec, key in plan:
        groups.setdefault((spec.section, spec.scene, spec.method), []).append(records.get(key))
    results = {"meta": meta, "runs_planned": len(plan), "runs_done": 0, "runs_failed": [], "runs_missing": [],
               "anomaly": [], "change": [], "scaling": {"rows": []}}
    missing = {}
    for spec, key in plan:
        r = records.get(key)
        if r is None:
            method = spec.method + (f" limit {spec.memory_limit}" if spec.memory_limit else "")
            missing.setdefault((spec.section, spec.scene or "device", method), []).append(spec.seed)
        elif "error" in r:
            results["runs_failed"].append({"run": spec.label, "error": r["error"]})
        else:
            results["runs_done"] += 1
    for (section, scene, method), seeds in missing.items():
        tail = f" (seeds {', '.join(map(str, seeds))})" if method in NETWORKS and section != "scaling" else ""
        results["runs_missing"].append(f"{section}: {scene} {method}{tail}")
    sections = {}
    for (section, scene, method), recs in groups.items():
        sections.setdefault(section, {}).setdefault(scene, {})[method] = aggregate(recs)
    for scene, methods in sections.get("anomaly", {}).items():
        row = {"scene": scene, "shape": list(scenes[scene].shape), "methods": methods}
        if scene in pub.PUBLISHED_AUC:
            row["published_name"], row["published"] = pub.PUBLISHED_AUC[scene]
        results["anomaly"].append(row)
    for scene, methods in sections.get("change", {}).items():
        results["change"].append({"pair": scene, "group": scenes[scene].group, "shape": list(scenes[scene].shape),
                                  "methods": methods, "reference": pub.cva_reference(scene)})
    matmul = sections.get("matmul", {}).get("", {}).get("matmul")
    rate = None
    if matmul and matmul["done"]:
        rec = next(r for r in groups[("matmul", "", "matmul")] if r and "result" in r)
        rate = rec["result"]["summary"]["matmul_flop_rate"]
        results["scaling"]["matmul"] = rec["result"]["summary"]
    for scene, methods in sections.get("scaling", {}).items():
        for method, agg in methods.items():
            row = {"scene": scene, "shape": list(scenes[scene].shape), "method": method, **agg}
            f = agg.get("flops", {})
            for what in ("training", "detection"):
                if rate and f.get(f"{what}_flop_rate"):
                    row[f"{what}_fraction_of_matmul"] = f[f"{what}_flop_rate"] / rate
            results["scaling"]["rows"].append(row)
    order = ["bs3lnet", "rx", "hypernet", "cva"]
    results["scaling"]["rows"].sort(key=lambda r: (order.index(r["method"]) if r["method"] in order else 9,
                                                   r["shape"][0] * r["shape"][1]))
    results["full"] = full_rows(plan, records, scenes, rate)
    results["verdicts"] = verdicts(results)
    return results


def full_rows(plan: list, records: dict, scenes: dict, matmul_rate: Optional[float]) -> list:
    """One row per full-size run: its stages, peak memory, scratch disk, whether it streamed, and its
    floor: reading its input once with GDAL plus its arithmetic at the measured matrix-multiply rate
    (the networks' counted FLOPs; RX's covariance and Mahalanobis products, 4 N B^2; CVA's is negligible)."""
    reads = {}
    for spec, key in plan:
        r = records.get(key)
        if spec.section == "read" and r and "result" in r:
            reads[spec.scene] = r["result"]["summary"]["read_seconds"]
    rows = []
    for spec, key in plan:
        r = records.get(key)
        if spec.section != "full" or r is None:
            continue
        shape = list(scenes[spec.scene].shape)
        row = {"scene": spec.scene, "shape": shape, "method": spec.method, "memory_limit": spec.memory_limit,
               **aggregate([r])}
        if "result" in r and "error" not in r:
            summary = r["result"]["summary"]
            row["scratch_bytes"] = summary.get("scratch_bytes", 0)
            row["streamed"] = bool(summary.get("streamed", row["scratch_bytes"] > 0))
            f = r["result"].get("flops") or {}
            flops = (f.get("training_flops") or 0) + (f.get("detection_flops") or 0)
            if spec.method == "rx":
                flops = 4.0 * shape[0] * shape[1] * shape[2] ** 2
            if spec.scene in reads and matmul_rate:
                row["floor_seconds"] = reads[spec.scene] + flops / matmul_rate
                row["read_seconds"] = reads[spec.scene]
        rows.append(row)
    return rows


def _avg(values: list) -> Optional[float]:
    """Mean of a list, None when any value (a run) is missing."""
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def _mean(agg: Optional[dict], metric: str) -> Optional[float]:
    return agg[metric]["mean"] if agg and agg.get(metric) else None


def verdicts(results: dict) -> dict:
    quick = results["meta"]["settings"].get("quick")
    out = {}
    bs3 = {row["scene"]: _mean(row["methods"].get("bs3lnet"), "auc") for row in results["anomaly"]}
    out["bs3lnet_accuracy"] = pub.bs3lnet_accuracy({k: v for k, v in bs3.items() if v is not None})
    pairs = {}
    for row in results["change"]:
        if row["group"] not in ("real", "simulated"):
            continue
        pairs[row["pair"]] = {m: {"auc": _mean(a, "auc"), "kappa": _mean(a, "kappa")}
                              for m, a in row["methods"].items() if _mean(a, "auc") is not None
                              and _mean(a, "kappa") is not None}
    out["hypernet_accuracy"] = pub.hypernet_accuracy(pairs)
    speed = []
    small = [row["methods"]["bs3lnet"] for row in results["anomaly"]
             if row["shape"] == [100, 100, 205] and row["methods"].get("bs3lnet", {}).get("seconds")]
    if small:
        secs = max(a["seconds"]["max"] for a in small)
        peak = max(a["peak_rss_bytes"]["max"] for a in small)
        speed.append({"what": "BS3LNet, 100 x 100 x 205 scenes (slowest run)", "seconds": secs,
                      "peak_rss_bytes": peak, "bar": "under 120 s and 2 GB",
                      "met": secs < 120 and peak < 2 * 1024 ** 3})
    for row in results["scaling"]["rows"]:
        if row["method"] == "bs3lnet" and row["shape"][:2] == [1000, 1000] and row.get("seconds"):
            peak = row["peak_rss_bytes"]["max"]
            speed.append({"what": "BS3LNet, 1000 x 1000 x 205 mosaic", "seconds": row["seconds"]["mean"],
                          "peak_rss_bytes": peak, "bar": "peak memory under 8 GB", "met": peak < 8 * 1024 ** 3})
    for row in results["change"]:
        agg = row["methods"].get("hypernet")
        if row["pair"].startswith("taizhou") and agg and agg.get("seconds"):
            secs = agg["seconds"]["max"]
            speed.append({"what": "HyperNet, Taizhou 400 x 400 x 6 (slowest run)", "seconds": secs,
                          "peak_rss_bytes": agg["peak_rss_bytes"]["max"], "bar": "under 600 s", "met": secs < 600})
    if quick:
        for s in speed:
            s["met"] = None
        out["note"] = "quick mode: the networks ran a short budget, so no bar is assessed"
        out["bs3lnet_accuracy"]["met"] = None
        out["hypernet_accuracy"]["met"] = None
    out["speed"] = speed
    return out


# --------------------------------------------------------------------------- Markdown

def _f(x, digits=4) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ms(agg: Optional[dict], metric: str, digits=4) -> str:
    if not agg or not agg.get(metric):
        return "–"
    s = agg[metric]
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}" if s["n"] > 1 else f"{s['mean']:.{digits}f}"


def _secs(agg: Optional[dict]) -> str:
    return _ms(agg, "seconds", 1)


def _mib(agg: Optional[dict], metric: str = "peak_rss_bytes") -> str:
    if not agg or not agg.get(metric):
        return "–"
    return f"{agg[metric]['max'] / MiB:.0f}"


def _diff(ours: Optional[float], ref: Optional[float]) -> str:
    return "–" if ours is None or ref is None else f"{ours - ref:+.4f}".replace("-0.0000", "+0.0000")


def _verdict(met) -> str:
    return {True: "**met**", False: "**not met**", None: "not assessed"}[met]


def _shape(shape) -> str:
    return " × ".join(str(s) for s in shape)


def markdown(results: dict) -> str:
    meta = results["meta"]
    src, mach, st = meta["source"], meta["machine"], meta["settings"]
    gpu = ", ".join(f"{g['name']} ({g['memory_bytes'] / 1024 ** 3:.0f} GiB)" for g in mach["gpus"]) or "no GPU"
    lines = ["# hsi-detect benchmark" + (" (quick)" if st["quick"] else ""), ""]
    dirty = " with uncommitted engine changes" if src["engine_uncommitted_changes"] else ""
    lines.append(f"Commit `{src['commit_short']}`{dirty} ({src['subject']}), engine sources `{src['engine_fingerprint']}`; "
                 f"{meta['date']}.")
    if len(src.get("run_commits", [])) > 1:
        lines.append(f"The runs were made over commits {', '.join(src['run_commits'])}; every run shown imported "
                     "only engine modules whose sources are the same at the commit above (runs whose code "
                     "changed since were discarded).")
    lines.append(f"Machine: {mach['cpu']}, {mach['usable_cores']} cores, {mach['memory_bytes'] / 1024 ** 3:.0f} GiB, "
                 f"{gpu}; torch {mach['torch']}, Python {mach['python']}.")
    load = meta.get("load") or {}
    lines.append(f"Settings: device {st['device']}, torch threads {st['threads'] or 'all'}, seeds of the networks "
                 f"{', '.join(map(str, st['seeds']))}, niceness {mach['niceness']}. "
                 + ("Networks at their default parameters (parameters.py)." if not st["overrides"] else
                    "Quick mode: the networks' defaults except a SHORT training budget: "
                    + "; ".join(f"{NAMES.get(m, m)} {', '.join(f'{k}={v}' for k, v in o.items())}"
                                for m, o in st["overrides"].items()) + "."))
    if load:
        lines.append(f"Machine load (1-minute load average around the runs): mean {load['mean']:.2f}, "
                     f"max {load['max']:.2f} on {mach['usable_cores']} cores — other work shared the machine, so "
                     "timings are noisy." if load["max"] > 0.5 * mach["usable_cores"] else
                     f"Machine load (1-minute load average around the runs): mean {load['mean']:.2f}, "
                     f"max {load['max']:.2f} on {mach['usable_cores']} cores.")
    lines.append(f"Runs: {results['runs_done']} of {results['runs_planned']} done"
                 + (f", {len(results['runs_failed'])} failed" if results["runs_failed"] else "")
                 + (f", {len(results['runs_missing'])} not run yet" if results["runs_missing"] else "") + ".")
    lines += ["", "Time is the pipeline's wall time (read, train, detect, write) in seconds; memory is the peak "
              "resident set of the run's own process in MiB (Python and library start-up included). Networks: "
              "mean ± standard deviation over the seeds.", ""]
    lines += summary_lines(results) + [""]
    lines += _verdict_lines(results["verdicts"])
    lines += _anomaly_lines(results)
    lines += _change_lines(results)
    lines += _scaling_lines(results)
    lines += _full_lines(results)
    if results["runs_failed"]:
        lines += ["", "## Failed runs", ""] + [f"- {f['run']}: {f['error']}" for f in results["runs_failed"]]
    if results["runs_missing"]:
        lines += ["", "## Not run yet", "", "; ".join(results["runs_missing"]) + "."]
    return "\n".join(lines) + "\n"


def summary_lines(results: dict) -> list:
    """The short table for the README: accuracy beside the baseline and the published figures, and cost."""
    lines = ["## Summary", "", "| task | data | ours | classical baseline | published | time s | MiB |",
             "|---|---|---|---|---|---|---|"]
    rows = results["anomaly"]
    five = [r for r in rows if r.get("published")]
    if five:
        def mean_of(rs, method):
            return _avg([_mean(r["methods"].get(method), "auc") for r in rs])

        def cost(rs, method):
            aggs = [r["methods"].get(method) for r in rs if r["methods"].get(method, {}).get("seconds")]
            if not aggs:
                return "–", "–"
            return (f"{np.mean([a['seconds']['mean'] for a in aggs]):.1f}",
                    f"{max(a['peak_rss_bytes']['max'] for a in aggs) / MiB:.0f}")

        pm = {k: np.mean([r["published"][k] for r in five]) for k in ("RX", "BS3LNet", "GT-HAD")}
        n5 = f"{len(five)} of the {len(pub.PUBLISHED_AUC)}" if len(five) < len(pub.PUBLISHED_AUC) else \
            f"the {len(five)}"
        t, m = cost(five, "bs3lnet")
        lines.append(f"| anomaly: BS3LNet, mean AUC | {n5} ABU scenes with published figures | "
                     f"{_f(mean_of(five, 'bs3lnet'))} | RX {_f(mean_of(five, 'rx'))} | BS3LNet {pm['BS3LNet']:.4f}, "
                     f"GT-HAD {pm['GT-HAD']:.4f}, RX {pm['RX']:.4f} | {t} | {m} |")
        t, m = cost(rows, "bs3lnet")
        lines.append(f"| anomaly: BS3LNet, mean AUC | all {len(rows)} scenes | {_f(mean_of(rows, 'bs3lnet'))} | "
                     f"RX {_f(mean_of(rows, 'rx'))} | – | {t} | {m} |")
    for row in results["change"]:
        h, c = row["methods"].get("hypernet"), row["methods"].get("cva")
        ref = row.get("reference")
        lines.append(f"| change: HyperNet, AUC / Kappa | {row['pair']} ({_shape(row['shape'])}) | "
                     f"{_f(_mean(h, 'auc'))} / {_f(_mean(h, 'kappa'))} | CVA {_f(_mean(c, 'auc'))} / "
                     f"{_f(_mean(c, 'kappa'))} | " + (f"CVA ref. {ref['auc']:.3f} / {ref['kappa']:.3f}" if ref
                                                     else "–") + f" | {_secs(h)} | {_mib(h)} |")
    for row in results["scaling"]["rows"]:
        if row["method"] in NETWORKS and row.get("seconds"):
            lines.append(f"| cost: {NAMES[row['method']]} | {_shape(row['shape'])} | | | | {_secs(row)} | "
                         f"{_mib(row)} |")
    return lines


def _verdict_lines(v: dict) -> list:
    lines = ["## The accuracy and speed bars", ""]
    if v.get("note"):
        lines += [f"Not assessed: {v['note']}.", ""]
    a3 = v["bs3lnet_accuracy"]
    mean = f"mean of the five {_f(a3['mean'])}" if a3["mean"] is not None else "no scene run"
    worst = [f"{r['scene']} {r['difference']:+.4f}" for r in a3["scenes"] if not r["ok"]]
    lines.append(f"- BS3LNet accuracy ({a3['bar']}): {_verdict(a3['met'])} — {mean}"
                 + (f"; more than 0.01 below on {', '.join(worst)}" if worst else "")
                 + (f"; missing {', '.join(a3['missing'])}" if a3["missing"] else "") + ".")
    a4 = v["hypernet_accuracy"]
    wins = ", ".join(f"{r['pair']} {'wins' if r['wins'] else 'loses'}" for r in a4["pairs"])
    lines.append(f"- HyperNet accuracy ({a4['bar']}): {_verdict(a4['met'])} — {a4['wins']} of {len(a4['pairs'])}"
                 f" pairs run{': ' + wins if wins else ''}" + ("" if a4["complete"] else
                                                               "; not all four pairs have been run") + ".")
    for s in v["speed"]:
        lines.append(f"- Speed: {s['what']}: {s['seconds']:.1f} s, {s['peak_rss_bytes'] / MiB:.0f} MiB "
                     f"(bar: {s['bar']}): {_verdict(s['met'])}.")
    return lines


def _anomaly_lines(results: dict) -> list:
    rows = results["anomaly"]
    if not rows:
        return []
    lines = ["", "## Anomaly detection (AUC of the score map)", "",
             f"Published figures: {pub.PUBLISHED_SOURCE}; Δ = ours − published.", "",
             "| scene | size | RX | RX publ. | Δ | BS3LNet | BS3LNet publ. | Δ | GT-HAD publ. | RX s | BS3LNet s "
             "| RX MiB | BS3LNet MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    five = {"rx": [], "bs3lnet": []}
    for row in rows:
        m, p = row["methods"], row.get("published", {})
        rx, bs = m.get("rx"), m.get("bs3lnet")
        name = row["scene"] + (f" ({row['published_name']})" if row.get("published_name") else "")
        lines.append(f"| {name} | {_shape(row['shape'])} | {_ms(rx, 'auc')} | {_f(p.get('RX'))} | "
                     f"{_diff(_mean(rx, 'auc'), p.get('RX'))} | {_ms(bs, 'auc')} | {_f(p.get('BS3LNet'))} | "
                     f"{_diff(_mean(bs, 'auc'), p.get('BS3LNet'))} | {_f(p.get('GT-HAD'))} | {_secs(rx)} | "
                     f"{_secs(bs)} | {_mib(rx)} | {_mib(bs)} |")
        if p:
            for k in five:
                five[k].append(_mean(m.get(k), "auc"))
    published_rows = [row for row in rows if row.get("published")]
    if published_rows:
        pm = {k: sum(row["published"][k] for row in published_rows) / len(published_rows)
              for k in ("RX", "BS3LNet", "GT-HAD")}
        r, b = _avg(five["rx"]), _avg(five["bs3lnet"])
        lines.append(f"| **mean of the {len(published_rows)} with published figures** | | {_f(r)} | {_f(pm['RX'])} | "
                     f"{_diff(r, pm['RX'])} | {_f(b)} | {_f(pm['BS3LNet'])} | {_diff(b, pm['BS3LNet'])} | "
                     f"{_f(pm['GT-HAD'])} | | | | |")
    allrx = _avg([_mean(row["methods"].get("rx"), "auc") for row in rows])
    allbs = _avg([_mean(row["methods"].get("bs3lnet"), "auc") for row in rows])
    lines.append(f"| **mean of all {len(rows)}** | | {_f(allrx)} | | | {_f(allbs)} | | | | | | | |")
    return lines


def _change_lines(results: dict) -> list:
    rows = results["change"]
    if not rows:
        return []
    lines = ["", "## Change detection", "",
             "AUC of the change magnitude; OA, Kappa, F1, precision and recall of the binary map (Otsu's threshold, "
             "the pipeline's default); unlabelled pixels (ground truth 255) left out. CVA ref.: the team's reference "
             "figures for CVA on these pairs.", "",
             "| pair | kind | method | AUC | OA | Kappa | F1 | precision | recall | s | MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for method in ("cva", "hypernet"):
            agg = row["methods"].get(method)
            if agg is None:
                continue
            cells = " | ".join(_ms(agg, m) for m in METRICS)
            lines.append(f"| {row['pair']} ({_shape(row['shape'])}) | {row['group']} | {NAMES[method]} | {cells} | "
                         f"{_secs(agg)} | {_mib(agg)} |")
        ref = row.get("reference")
        if ref:
            lines.append(f"| | | CVA ref. | {_f(ref['auc'], 3)} | | {_f(ref['kappa'], 3)} | | | | | |")
    return lines


def _scaling_lines(results: dict) -> list:
    sc = results["scaling"]
    if not sc["rows"] and not sc.get("matmul"):
        return []
    lines = ["", "## Cost against scene size", ""]
    mm = sc.get("matmul")
    if mm:
        lines.append(f"Measured matrix-multiply throughput of the device: {mm['matmul_flop_rate'] / 1e9:.1f} GFLOP/s "
                     f"(float32, {mm['size']} × {mm['size']}, {mm['device']}, {mm['threads']} threads). The networks' "
                     "FLOPs are counted by torch.utils.flop_counter (convolutions and matrix products, forward and "
                     "backward) over the first training steps and the whole detection; the rate is FLOPs over the "
                     "stage's wall time, and % is that rate over the matrix-multiply throughput.")
    lines += ["", "Scenes: square mosaics of real 100 × 100 × 205 AVIRIS scenes (airport-1/2/3, urban-4/5), each "
              "tile mirrored at random; the change network gets a simulated pair made from the mosaic.", "",
              "| method | size | total s | training s | detection s | MiB | GPU MiB | training GFLOP/s (%) "
              "| detection GFLOP/s (%) | AUC |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in sc["rows"]:
        f, st = row.get("flops", {}), row.get("stage_seconds", {})

        def rate(what):
            r = f.get(f"{what}_flop_rate")
            frac = row.get(f"{what}_fraction_of_matmul")
            return "–" if not r else f"{r / 1e9:.1f}" + (f" ({100 * frac:.0f} %)" if frac else "")

        lines.append(f"| {NAMES.get(row['method'], row['method'])} | {_shape(row['shape'])} | {_secs(row)} | "
                     f"{_f(st.get('training'), 1)} | {_f(st.get('detecting'), 1)} | {_mib(row)} | "
                     f"{_mib(row, 'gpu_peak_bytes')} | {rate('training')} | {rate('detection')} | {_ms(row, 'auc')} |")
    return lines


def _full_lines(results: dict) -> list:
    rows = results.get("full") or []
    if not rows:
        return []
    limit = results["meta"]["settings"].get("default_memory_limit")
    lines = ["", "## Full-size scenes", "",
             "Scenes: 224-band int16 GeoTIFFs, tiled 256 × 256, pixel-interleaved and uncompressed, as sensor products "
             "are delivered: mosaics of the real AVIRIS scenes above with their 205 bands resampled to 224; the change "
             "pair simulated from the mosaic in 1000 × 1000 chunks. Each run has the engine's default memory limit "
             "(half the available memory, at most 2 GB" + (f"; here {limit / 2**30:.2f} GiB" if limit else "")
             + "), unless the limit column gives one; 'streamed' runs read the scene window by window from disk. Stages are wall seconds; scratch is the size of the run's scratch files on disk; the floor is "
             "reading the input once with GDAL plus the run's arithmetic at the measured matrix-multiply rate.", "",
             "| method | size | limit | path | total s | reading | preparing | training | detecting | writing "
             "| peak MiB | scratch MiB | floor s | × floor | AUC |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        st = row.get("stage_seconds") or {}
        if not row.get("done"):
            lines.append(f"| {NAMES.get(row['method'], row['method'])} | {_shape(row['shape'])} | "
                         f"{row['memory_limit'] or 'default'} | " + ("failed: " + row["errors"][0][:80] if row["errors"]
                                                                    else "not run") + " |" + " |" * 11)
            continue
        floor = row.get("floor_seconds")
        total = row["seconds"]["mean"] if row.get("seconds") else None
        lines.append(f"| {NAMES.get(row['method'], row['method'])} | {_shape(row['shape'])} | "
                     f"{row['memory_limit'] or 'default'} | {'streamed' if row.get('streamed') else 'in memory'} | "
                     f"{_secs(row)} | " + " | ".join(_f(st.get(k), 1) for k in
                                                     ("reading", "preparing", "training", "detecting", "writing"))
                     + f" | {_mib(row)} | {row.get('scratch_bytes', 0) / MiB:.0f} | {_f(floor, 1)} | "
                     + (f"{total / floor:.1f}" if floor and total else "–") + f" | {_ms(row, 'auc')} |")
    return lines


# --------------------------------------------------------------------------- files

def roc_png(path: str, title: str, curves: list):
    """curves: [(label, colour, [(fpr, tpr, auc), ...])]; several seeds share a label."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.2), dpi=100)
    for i, logx in enumerate((False, True)):
        ax = fig.add_subplot(1, 2, i + 1)
        for label, colour, runs in curves:
            for j, (fpr, tpr, auc) in enumerate(runs):
                aucs = [a for _, _, a in runs]
                text = f"{label} (AUC {np.mean(aucs):.4f}" + (f", {len(runs)} seeds)" if len(runs) > 1 else ")")
                ax.plot(fpr, tpr, color=colour, lw=1.5, alpha=1.0 if j == 0 else 0.5, label=text if j == 0 else None)
        if logx:
            ax.set_xscale("log")
            ax.set_xlim(1e-4, 1)
            ax.set_title("log false-positive rate")
        else:
            ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--")
            ax.set_xlim(0, 1)
            ax.set_title(title)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


COLOURS = {"rx": "#1f77b4", "bs3lnet": "#c0392b", "cva": "#1f77b4", "hypernet": "#c0392b"}


def write_rocs(out_dir: str, plan: list, records: dict) -> list:
    folder = os.path.join(out_dir, "roc")
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        if old.endswith(".png"):
            os.remove(os.path.join(folder, old))
    by_scene = {}
    for spec, key in plan:
        r = records.get(key)
        if spec.section in ("anomaly", "change") and r and r.get("metrics", {}).get("roc"):
            roc = r["metrics"]["roc"]
            by_scene.setdefault(spec.scene, {}).setdefault(spec.method, []).append(
                (roc["fpr"], roc["tpr"], r["metrics"]["auc"]))
    written = []
    for scene, methods in sorted(by_scene.items()):
        curves = [(NAMES.get(m, m), COLOURS.get(m, "k"), runs) for m, runs in sorted(methods.items(), key=lambda x: x[0] in NETWORKS)]
        path = os.path.join(folder, f"{scene}.png")
        roc_png(path, f"ROC: {scene}", curves)
        written.append(path)
    return written


def _strip(record: dict) -> dict:
    r = json.loads(json.dumps(record))
    r.get("metrics", {}).pop("roc", None)
    r.pop("log_tail", None)
    return r


def write_results(out_dir: str, results: dict, plan: list, records: dict) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    doc = dict(results)
    doc["runs"] = [_strip(records[key]) for _, key in plan if key in records]
    md = markdown(results)
    paths = {"markdown": os.path.join(out_dir, "results.md"), "json": os.path.join(out_dir, "results.json")}
    with open(paths["json"], "w") as f:
        json.dump(doc, f, indent=1)
    with open(paths["markdown"], "w") as f:
        f.write(md)
    paths["roc"] = write_rocs(out_dir, plan, records)
    return {"paths": paths, "markdown": md}
