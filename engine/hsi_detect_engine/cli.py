"""The ``hsi-detect`` command: anomaly, change, evaluate and batch (many jobs on Dask, in batch/).

Progress goes to stderr as a progress bar, or with --json-progress to stdout as one JSON
object per line (what the QGIS plugin reads). Exit status: 0 success, 1 bad input or
failed run, 2 bad command line, 3 cancelled, 4 internal error.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from . import __version__
from .errors import Cancelled, HsiDetectError
from .parameters import (ANOMALY_THRESHOLD, BS3LNET, CHANGE_THRESHOLD, FALSE_ALARM_RATE, HYPERNET, MEMORY_LIMIT,
                         SEED, THRESHOLD_HELP, THRESHOLDS, parse_yes_no)
from .progress import Progress
from .io.bands import parse_band_ranges
from .io.products.wavelengths import BAD_BAND_MODES, parse_ranges
from .io.transaction import disk_error, final_name

EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED, EXIT_INTERNAL = 1, 2, 3, 4


class BarProgress:
    """Progress events as tqdm bars on stderr, one bar per stage."""

    def __init__(self):
        self.bar = None
        self.stage = None

    def __call__(self, event: dict):
        from tqdm import tqdm

        if event["stage"] == "log":
            tqdm.write(event["message"], file=sys.stderr)
            return
        if event["stage"] != self.stage:
            self.close()
            self.stage = event["stage"]
            self.bar = tqdm(total=1000, desc=f"{self.stage:<10}", file=sys.stderr, leave=True,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
        self.bar.n = int(round(event["fraction"] * 1000))
        if "loss" in event:
            self.bar.set_postfix_str(f"loss {event['loss']:.5g}", refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _json_line(obj: dict):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _common(p: argparse.ArgumentParser):
    g = p.add_argument_group("run")
    g.add_argument("--json-progress", action="store_true", help="report progress as JSON lines on stdout (for programs)")
    g.add_argument("--cancel-on-stdin", action="store_true",
                   help="cancel when a line 'cancel' or end-of-file arrives on stdin (for programs that start this one)")
    g.add_argument("--debug", action="store_true", help="show the traceback of an error")


def _memory_option(p: argparse.ArgumentParser):
    p.add_argument("--memory-limit", type=_memory_size_text, metavar="SIZE",
                   help=f"{MEMORY_LIMIT.help} (default: automatic)".replace("%", "%%"))


def _run_options(p: argparse.ArgumentParser, what: str, threshold: str, objects: str):
    p.add_argument("--bands", type=_band_list, help="1-based bands to use, e.g. 1-50,60,70-120 (default: all)")
    p.add_argument("--wavelengths", type=_wavelength_ranges, metavar="RANGES",
                   help="wavelength ranges to use, in nm, e.g. 400-1340,1460-1790,1960-2450 (default: all)")
    p.add_argument("--bad-bands", choices=BAD_BAND_MODES, default="drop",
                   help="drop (default): leave out the bands the product flags bad and, when wavelengths are known, "
                        "the water-vapour absorption windows 1340-1460 and 1790-1960 nm; keep: use them")
    p.add_argument("--mask-clouds", action="store_true",
                   help="EnMAP L2A: mark the pixels of the product's cloud, cloud-shadow and haze layers invalid")
    p.add_argument("--threshold", choices=THRESHOLDS, default=threshold,
                   help=f"how the binary map is thresholded: {THRESHOLD_HELP} (default: {threshold})")
    p.add_argument("--false-alarm-rate", type=float,
                   help=f"{FALSE_ALARM_RATE.help} {FALSE_ALARM_RATE.allowed().capitalize()}.")
    p.add_argument("--threshold-value", type=float, help="score above which a pixel is marked (with --threshold value)")
    p.add_argument("--top-fraction", type=float, help="fraction of pixels to mark (with --threshold fraction)")
    p.add_argument("--objects", metavar="OUT.gpkg",
                   help=f"also write the {objects} (8-connected regions of the binary map) as a GeoPackage polygon "
                        "layer: rank by peak score, pixels, area, peak and mean score, peak and centroid coordinates")
    p.add_argument("--min-object-size", type=int, default=1, metavar="PIXELS",
                   help="leave out objects of fewer pixels (default: 1)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--seed", type=int, default=SEED.default,
                   help=f"{SEED.help} {SEED.allowed().capitalize()} (default: {SEED.default})")
    p.add_argument("--save-model", metavar="MODEL", help=f"save the trained {what} network to this file")
    p.add_argument("--model", metavar="MODEL", help="apply this saved model instead of training")
    _memory_option(p)


def _method_options(p: argparse.ArgumentParser, params: list, title: str):
    if not params:
        return
    g = p.add_argument_group(title)
    for prm in params:
        limits = f"; {prm.allowed()}" if prm.allowed() else ""
        extra = f"; paper: {prm.paper}" if prm.paper is not None else ""
        kwargs = {"dest": prm.name, "default": None,
                  "help": f"{prm.help} (default: {_shown(prm.default)}{extra}{limits})".replace("%", "%%")}
        if prm.type is bool:
            kwargs["type"] = _parse_bool
            kwargs["metavar"] = "yes|no"
        else:
            kwargs["type"] = prm.type
        if prm.choices:
            kwargs["choices"] = prm.choices
        g.add_argument(prm.flag, **kwargs)


def _shown(value) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def _checked(parse, keep_text: bool = False):
    """An argparse type from an engine parser: its HsiDetectError becomes argparse's usage error;
    ``keep_text``: the text itself is kept (checked again once the image or the machine is known)."""
    def convert(text: str):
        try:
            value = parse(text)
        except HsiDetectError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text if keep_text else value

    return convert


def _memory_size(text: str):
    from .io.memory import parse_memory_size

    return parse_memory_size(text)


_band_list = _checked(parse_band_ranges, keep_text=True)
_memory_size_text = _checked(_memory_size, keep_text=True)
_wavelength_ranges = _checked(parse_ranges)


def _parse_bool(text: str) -> bool:
    value = parse_yes_no(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not yes or no")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hsi-detect",
        description="Self-supervised hyperspectral change detection (HyperNet) and anomaly detection (BS3LNet), "
                    "with the classical CVA and RX as baselines. Inputs: any GDAL raster, or .mat/.npy/.npz cubes.")
    parser.add_argument("--version", action="version", version=f"hsi-detect {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    a = sub.add_parser("anomaly", help="anomaly score map of one image (BS3LNet or RX)",
                       description="Train BS3LNet on the image itself (no labels) and write its anomaly score "
                                   "map (0..1), or run global RX.")
    a.add_argument("input", metavar="INPUT", help="hyperspectral image: a GDAL raster, an ENVI .hdr, an EnMAP L2A folder or METADATA.XML, a PRISMA L2D .he5 or an EMIT L2A .nc")
    a.add_argument("--output", "-o", required=True, metavar="SCORE.tif", help="anomaly score GeoTIFF to write")
    a.add_argument("--binary", metavar="MAP.tif", help="also write a binary anomaly map (1 anomaly, 0 background)")
    a.add_argument("--method", choices=("bs3lnet", "rx"), default="bs3lnet", help="detector (default: bs3lnet)")
    _run_options(a, "BS3LNet", ANOMALY_THRESHOLD, "detected objects")
    _method_options(a, BS3LNET, "BS3LNet parameters")
    _common(a)

    c = sub.add_parser("change", help="change maps between two dates (HyperNet or CVA)",
                       description="Train HyperNet on the two dates themselves (no labels) and write the change "
                                   "magnitude, the anomalous-change score and a binary change map; or run CVA.")
    c.add_argument("t1", metavar="T1", help="image of the first date")
    c.add_argument("t2", metavar="T2", help="image of the second date (same bands)")
    c.add_argument("--output", "-o", required=True, metavar="CHANGE.tif", help="change magnitude GeoTIFF to write")
    c.add_argument("--anomalous-change", metavar="ACD.tif", help="also write the anomalous-change score (RX of the feature difference)")
    c.add_argument("--binary", metavar="MAP.tif", help="also write a binary change map (1 changed, 0 unchanged)")
    c.add_argument("--training-mask", metavar="MASK.tif", help="raster whose non-zero pixels are unchanged pixels to train on "
                                                               "(default: chosen automatically)")
    c.add_argument("--method", choices=("hypernet", "cva"), default="hypernet", help="detector (default: hypernet)")
    c.add_argument("--grid", choices=("resample", "refuse"), default="resample",
                   help="when the dates' grids differ: resample date 2 onto date 1 (default) or stop")
    _run_options(c, "HyperNet", CHANGE_THRESHOLD, "changed regions")
    _method_options(c, HYPERNET, "HyperNet parameters")
    _common(c)

    e = sub.add_parser("evaluate", help="accuracy of a score or binary map against a ground truth",
                       description="AUC, overall accuracy, Kappa, F1, precision and recall; for a score map the "
                                   "binary figures are taken at its Otsu threshold. Object level: the share of "
                                   "ground-truth objects (8-connected regions) hit and the detected objects that "
                                   "touch none (false objects).")
    e.add_argument("map", metavar="MAP", help="score or binary raster")
    e.add_argument("ground_truth", metavar="GROUND_TRUTH", help="raster: 1 = changed/anomalous, other labelled values = background")
    e.add_argument("--unlabelled", type=float, help="ground-truth value meaning 'not labelled' (left out of every figure)")
    e.add_argument("--report", metavar="REPORT.html", help="write an HTML report with the ROC curve and confusion matrix")
    _memory_option(e)
    _common(e)

    from .batch import add_parser as add_batch_parser

    add_batch_parser(sub, _common)
    return parser


def _method_params(args, params: list) -> dict:
    return {p.name: getattr(args, p.name) for p in params if getattr(args, p.name, None) is not None}


def _band_options(args) -> dict:
    return {"wavelengths": args.wavelengths, "bad_bands": args.bad_bands, "mask_clouds": args.mask_clouds}


def _dispatch(args, progress: Progress) -> dict:
    if args.command == "anomaly":
        from .anomaly import run_anomaly

        return run_anomaly(args.input, args.output, binary=args.binary, objects=args.objects,
                           min_object_size=args.min_object_size, bands=args.bands, method=args.method,
                           threshold=args.threshold, threshold_value=args.threshold_value,
                           top_fraction=args.top_fraction, false_alarm_rate=args.false_alarm_rate, device=args.device,
                           seed=args.seed, model=args.model, save_model=args.save_model,
                           params=_method_params(args, BS3LNET), progress=progress, memory_limit=args.memory_limit,
                           **_band_options(args))
    if args.command == "change":
        from .change import run_change

        return run_change(args.t1, args.t2, args.output, anomalous=args.anomalous_change, binary=args.binary,
                          objects=args.objects, min_object_size=args.min_object_size,
                          false_alarm_rate=args.false_alarm_rate, training_mask=args.training_mask, bands=args.bands,
                          method=args.method, grid=args.grid,
                          threshold=args.threshold, threshold_value=args.threshold_value,
                          top_fraction=args.top_fraction, device=args.device, seed=args.seed, model=args.model,
                          save_model=args.save_model, params=_method_params(args, HYPERNET), progress=progress,
                          memory_limit=args.memory_limit, **_band_options(args))
    from .accuracy.evaluate import evaluate

    return evaluate(args.map, args.ground_truth, unlabelled=args.unlabelled, report=args.report,
                    memory_limit=args.memory_limit, progress=progress)


def _watch_stdin(progress: Progress):
    for line in sys.stdin:
        if line.strip().lower() == "cancel":
            break
    progress.cancel()


def _print_summary(result: dict):
    if "auc" in result:
        print(" ".join(f"{k.upper()} {result[k]:.4f}" for k in ("auc", "oa", "kappa", "f1", "precision", "recall")))
        print(f"objects: {result['objects_hit']} of {result['truth_objects']} ground-truth objects hit, "
              f"{result['false_objects']} of {result['detected_objects']} detected objects false")
        if result.get("report"):
            print(f"report: {result['report']}")
        return
    for name, path in result.get("outputs", {}).items():
        print(f"{name}: {path}")
    if result.get("bands"):
        waves = result.get("wavelengths")
        print(f"{result['bands']} bands" + (f", {min(waves):.0f}-{max(waves):.0f} nm" if waves else ""))
    extra = [f"device {result['device']}" if result.get("device") else "", f"{result.get('seconds', 0):.1f} s"]
    print(", ".join(x for x in extra if x))


def exit_for(exc: Exception, debug: bool, fail) -> int:
    """The exit status (through ``fail(kind, message, code)``) of a run that raised ``exc``: one
    sentence for what the user can mend, one line naming a bug (its traceback with --debug)."""
    if isinstance(exc, Cancelled):
        return fail("cancelled", str(exc), EXIT_CANCELLED)
    if debug:
        raise exc
    if isinstance(exc, HsiDetectError):
        return fail("input", str(exc), EXIT_ERROR)
    if isinstance(exc, MemoryError):
        return fail("memory", "Out of memory. Select fewer bands, process a smaller area, or use a machine with "
                              "more memory.", EXIT_ERROR)
    error = disk_error(exc, final_name(getattr(exc, "filename", None) or "an output"))
    if error is not None:  # a full disk or a refused write, even where the library did not say so plainly
        return fail("input", str(error), EXIT_ERROR)
    text = str(exc).splitlines()[0] if str(exc) else ""
    if "out of memory" in text.lower():
        return fail("memory", f"Out of memory on the device ({text}). Try --device cpu or fewer bands.", EXIT_ERROR)
    return fail("internal", f"internal error: {type(exc).__name__}: {text} (run with --debug for the traceback)",
                EXIT_INTERNAL)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "batch":
        from .batch import main as batch_main

        return batch_main(args)
    bar = None if args.json_progress else BarProgress()
    progress = Progress(_json_line if args.json_progress else bar)

    def on_signal(signum, frame):
        progress.cancel()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if args.cancel_on_stdin:
        threading.Thread(target=_watch_stdin, args=(progress,), daemon=True).start()

    def fail(kind: str, message: str, code: int) -> int:
        if bar is not None:
            bar.close()
        if args.json_progress:
            _json_line({"error": message, "kind": kind})
        print(f"hsi-detect: error: {message}", file=sys.stderr)
        return code

    try:
        result = _dispatch(args, progress)
    except Exception as exc:
        return exit_for(exc, args.debug, fail)
    if bar is not None:
        bar.close()
    if args.json_progress:
        _json_line({"result": result})
    else:
        _print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
