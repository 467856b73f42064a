"""Time and peak memory of HyperNet's default on Taizhou and a simulated 300 x 300 x 200 pair.

Each measurement runs the change pipeline (`run_change`, all outputs) in a fresh child
process, with all of torch's threads, and reads the child's peak resident memory.

    python bench/studies/hypernet_speed.py [taizhou] [sim300] [--param NAME=VALUE ...]

Prints one JSON line per measurement.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "engine"))
DATA = os.environ.get("HSI_DATA", "/work/shared/data")
CHILD = """
import json, sys, time
sys.path.insert(0, {engine!r})
from hsi_detect_engine.change import run_change
started = time.perf_counter()
summary = run_change({t1!r}, {t2!r}, {out!r}, anomalous={acd!r}, binary={binary!r}, device="cpu", seed=1,
                     params={params!r})
print(json.dumps({{"wall_s": round(time.perf_counter() - started, 1), "summary": summary}}, default=str))
"""


def prepare(name: str, folder: str) -> tuple:
    """GeoTIFFs (t1, t2) of a pair: 'taizhou' (the shipped demo) or 'sim300' (300 x 300 x 200)."""
    if name == "taizhou":
        demo = os.path.join(ROOT, "data", "demo")
        return os.path.join(demo, "taizhou_2000.tif"), os.path.join(demo, "taizhou_2003.tif")
    from hsi_detect_engine.simulate import load_scene, simulate_change_pair, write_pair

    scene = load_scene(os.path.join(DATA, "anomaly", "abu-airport-1.npz"))
    paths = write_pair(simulate_change_pair(scene, seed=0, size=(300, 300), bands=200), os.path.join(folder, name))
    return paths["t1"], paths["t2"]


def measure(name: str, params: dict) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        t1, t2 = prepare(name, folder)
        code = CHILD.format(engine=os.path.join(ROOT, "engine"), t1=t1, t2=t2, out=os.path.join(folder, "c.tif"),
                            acd=os.path.join(folder, "a.tif"), binary=os.path.join(folder, "b.tif"), params=params)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        total = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        child = json.loads(r.stdout.strip().splitlines()[-1])
    load = os.getloadavg()
    return {"pair": name, "params": params, "process_s": round(total, 1), "pipeline_s": child["wall_s"],
            "peak_rss_mb": round(max(peak, before) / 1024), "loadavg_1_5_15": [round(x, 2) for x in load],
            "cpu_threads": child["summary"].get("device"), "summary": child["summary"]}


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description="HyperNet time and peak memory")
    ap.add_argument("pairs", nargs="*", default=["taizhou", "sim300"], help="taizhou and/or sim300")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a HyperNet parameter")
    args = ap.parse_args(argv)
    params = {k: _value(v) for k, v in (p.split("=", 1) for p in args.param)}
    for name in args.pairs:
        print(json.dumps(measure(name, params)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
