"""Time and peak memory of HyperNet's default on Taizhou and a simulated 300 x 300 x 200 pair.

Each measurement runs the change pipeline (`run_change`, all outputs) in a fresh child
process, with all of torch's threads, measured as every benchmark run is (bench.child:
its own peak resident memory).

    python -m bench.studies.hypernet_speed [taizhou] [sim300] [--param NAME=VALUE ...]

Prints one JSON line per measurement.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

from ..child import run_child
from ..runner import REPO
from ..scenes import data_folder

CHILD = """
import json, time
from hsi_detect_engine.change import run_change
started = time.perf_counter()
summary = run_change({t1!r}, {t2!r}, {out!r}, anomalous={acd!r}, binary={binary!r}, device="cpu", seed=1,
                     params={params!r})
print(json.dumps({{"wall_s": round(time.perf_counter() - started, 1), "summary": summary}}, default=str))
"""


def prepare(name: str, folder: str) -> tuple:
    """GeoTIFFs (t1, t2) of a pair: 'taizhou' (the shipped demo) or 'sim300' (300 x 300 x 200)."""
    if name == "taizhou":
        demo = os.path.join(REPO, "data", "demo")
        return os.path.join(demo, "taizhou_2000.tif"), os.path.join(demo, "taizhou_2003.tif")
    from hsi_detect_engine.simulate import load_scene, simulate_change_pair, write_pair

    scene = load_scene(os.path.join(data_folder(), "anomaly", "abu-airport-1.npz"))
    paths = write_pair(simulate_change_pair(scene, seed=0, size=(300, 300), bands=200), os.path.join(folder, name))
    return paths["t1"], paths["t2"]


def measure(name: str, params: dict) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        t1, t2 = prepare(name, folder)
        code = CHILD.format(t1=t1, t2=t2, out=os.path.join(folder, "c.tif"), acd=os.path.join(folder, "a.tif"),
                            binary=os.path.join(folder, "b.tif"), params=params)
        r = run_child([sys.executable, "-c", code])
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        child = json.loads(r.stdout_lines[-1])
    load = os.getloadavg()
    return {"pair": name, "params": params, "process_s": round(r.seconds, 1), "pipeline_s": child["wall_s"],
            "peak_rss_mb": round(r.peak_rss_bytes / 2 ** 20), "loadavg_1_5_15": [round(x, 2) for x in load],
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

    ap = argparse.ArgumentParser(prog="python -m bench.studies.hypernet_speed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="*", default=["taizhou", "sim300"], help="taizhou and/or sim300")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a HyperNet parameter")
    args = ap.parse_args(argv)
    params = {k: _value(v) for k, v in (p.split("=", 1) for p in args.param)}
    for name in args.pairs:
        print(json.dumps(measure(name, params)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
