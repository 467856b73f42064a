"""make demo: the plugin's algorithms, run through qgis_process on the shipped demo scenes.

BS3LNet finds anomalies in the HYDICE Urban scene, HyperNet finds change between the Taizhou
images of 2000 and 2003, the classical RX and CVA do the same for comparison, and the
accuracy assessment scores every map against the scenes' ground truth. Everything runs in
a throw-away QGIS profile; the outputs go to build/demo/. On 2 CPU cores it takes about 3
minutes; BS3LNet's default training is most of it.
Run: .venv/bin/python scripts/demo.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "demo")
OUT = os.path.join(ROOT, "build", "demo")


def find_qgis_process() -> str:
    """$QGIS_PROCESS, else Debian's qgis_process.bin (its qgis_process wrapper is broken on Debian 12),
    else qgis_process on PATH."""
    return (os.environ.get("QGIS_PROCESS") or shutil.which("qgis_process.bin")
            or shutil.which("qgis_process") or "/usr/bin/qgis_process.bin")


QGIS_PROCESS = find_qgis_process()


class QgisProcess:
    """qgis_process.bin with a temporary profile in which only this repository's plugin is added."""

    def __init__(self, profile: str):
        self.env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=profile, HOME=profile,
                        TMPDIR=os.path.join(profile, "tmp"), QGIS_PLUGINPATH=ROOT, QT_QPA_PLATFORM="offscreen",
                        PATH=os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ.get("PATH", ""))
        os.makedirs(self.env["TMPDIR"], exist_ok=True)
        self.call("plugins", "enable", "hsi_detect_plugin")

    def call(self, *args) -> str:
        done = subprocess.run([QGIS_PROCESS, *args], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"qgis_process {' '.join(args[:2])} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def run(self, algorithm: str, **params) -> tuple:
        """Run one algorithm; return (results, seconds)."""
        args = ["--json", "run", f"hsidetect:{algorithm}", "--"] + [f"{k}={v}" for k, v in params.items()]
        print(f"  qgis_process run hsidetect:{algorithm} ...", flush=True)
        started = time.perf_counter()
        answer = json.loads(self.call(*args))
        return answer["results"], time.perf_counter() - started


def out(name: str) -> str:
    return os.path.join(OUT, name)


def accuracy(qp: QgisProcess, results: dict, truth: str, name: str) -> dict:
    """AUC of the score map; OA, Kappa, F1, precision and recall of the binary map."""
    of_score, _ = qp.run("accuracy", INPUT=results["OUTPUT"], GROUND_TRUTH=truth,
                         OUTPUT_REPORT=out(f"{name}_score_accuracy.html"))
    of_binary, _ = qp.run("accuracy", INPUT=results["OUTPUT_BINARY"], GROUND_TRUTH=truth,
                          OUTPUT_REPORT=out(f"{name}_binary_accuracy.html"))
    return {**of_binary, "AUC": of_score["AUC"]}


def main():
    if not os.path.exists(QGIS_PROCESS):
        sys.exit(f"{QGIS_PROCESS} is missing: run `make install` first.")
    os.makedirs(OUT, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="hsi-detect-demo-")
    rows, notes = [], []
    try:
        qp = QgisProcess(profile)
        hydice, hydice_gt = os.path.join(DATA, "hydice_urban.tif"), os.path.join(DATA, "hydice_urban_gt.tif")
        t1, t2 = os.path.join(DATA, "taizhou_2000.tif"), os.path.join(DATA, "taizhou_2003.tif")
        taizhou_gt = os.path.join(DATA, "taizhou_gt.tif")

        print("Anomaly detection, HYDICE Urban (80 x 100 pixels, 162 bands):")
        for method in ("bs3lnet", "rx"):
            results, seconds = qp.run(method, INPUT=hydice, OUTPUT=out(f"hydice_{method}_score.tif"),
                                      OUTPUT_BINARY=out(f"hydice_{method}_anomalies.tif"),
                                      OUTPUT_OBJECTS=out(f"hydice_{method}_objects.gpkg"))
            figures = accuracy(qp, results, hydice_gt, f"hydice_{method}")
            rows.append((method.upper() if method == "rx" else "BS3LNet", "HYDICE Urban", seconds, figures))
        notes.append("Both networks ran with their default settings (BS3LNet: 100 training iterations of 100 "
                     "patches; HyperNet: 200 epochs on 64 x 64 pixel crops).")

        print("Change detection, Taizhou 2000 -> 2003 (400 x 400 pixels, 6 Landsat bands):")
        for method in ("hypernet", "cva"):
            results, seconds = qp.run(method, INPUT_T1=t1, INPUT_T2=t2, OUTPUT=out(f"taizhou_{method}_change.tif"),
                                      OUTPUT_ANOMALOUS=out(f"taizhou_{method}_anomalous_change.tif"),
                                      OUTPUT_BINARY=out(f"taizhou_{method}_changed.tif"),
                                      OUTPUT_OBJECTS=out(f"taizhou_{method}_regions.gpkg"))
            figures = accuracy(qp, results, taizhou_gt, f"taizhou_{method}")
            rows.append(("HyperNet" if method == "hypernet" else "CVA", "Taizhou", seconds, figures))
    finally:
        shutil.rmtree(profile, ignore_errors=True)

    print(f"\nOutputs in {OUT}:")
    print("  *_score.tif            anomaly score, 0 (background) to 1 (most anomalous)")
    print("  *_anomalies.tif        binary anomaly map: 1 anomaly, 0 background (hysteresis threshold)")
    print("  *_objects.gpkg         detected objects: the binary map's regions, ranked by peak score")
    print("  *_change.tif           change magnitude: larger means more change")
    print("  *_anomalous_change.tif anomalous-change score (RX of the change): change unlike the rest")
    print("  *_changed.tif          binary change map: 1 changed, 0 unchanged (Otsu threshold)")
    print("  *_regions.gpkg         changed regions: the binary change map's regions")
    print("  *_accuracy.html        accuracy reports of the score and of the binary map: figures, ROC curve,")
    print("                         confusion matrix")
    print("  Each .tif and .gpkg has a .qml beside it, so QGIS opens it styled.")
    print("\nAccuracy against the ground truth (AUC of the score map; OA, Kappa, F1, precision and recall of the")
    print("binary map, the share of ground-truth objects it hits and its false objects; Taizhou's unlabelled")
    print("pixels left out):")
    print(f"  {'method':<9} {'scene':<13} {'AUC':>6} {'OA':>6} {'Kappa':>6} {'F1':>6} {'Prec.':>6} {'Recall':>6} "
          f"{'hit':>5} {'false':>5} {'time':>7}")
    for method, scene, seconds, f in rows:
        print(f"  {method:<9} {scene:<13} {f['AUC']:6.4f} {f['OA']:6.4f} {f['KAPPA']:6.4f} {f['F1']:6.4f} "
              f"{f['PRECISION']:6.4f} {f['RECALL']:6.4f} {f['OBJECTS_HIT']:5.2f} {f['FALSE_OBJECTS']:5.0f} "
              f"{seconds:6.1f}s")
    print("  (time: the detector's qgis_process run, QGIS start-up included)")
    for note in notes:
        print(f"Note: {note}")


if __name__ == "__main__":
    main()
