"""HTML accuracy report: the figures, the confusion matrix and the ROC curve (embedded PNG)."""

from __future__ import annotations

import base64
import datetime
import html
import io

from .. import __version__


def roc_png(fpr, tpr, auc: float) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.add_subplot(111)
    ax.plot(fpr, tpr, color="#c0392b", lw=2, label=f"AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_accuracy_report(path: str, figures: dict, fpr, tpr, title: str) -> str:
    """Write the report to ``path`` (a run's temporary)."""
    png = base64.b64encode(roc_png(fpr, tpr, figures["auc"])).decode("ascii")
    c = figures["confusion"]
    rows = "".join(f"<tr><th>{name}</th><td>{figures[key]:.4f}</td></tr>" for name, key in
                   [("AUC", "auc"), ("Overall accuracy", "oa"), ("Kappa", "kappa"), ("F1", "f1"),
                    ("Precision", "precision"), ("Recall", "recall")])
    how = ("the map is binary" if figures["binary_input"]
           else f"binary figures at Otsu's threshold {figures['threshold']:.6g} of the score")
    esc = html.escape
    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #bbb;padding:4px 10px;text-align:right}} th{{background:#f2f2f2;text-align:left}}</style></head>
<body><h1>{esc(title)}</h1>
<p>Map: <code>{esc(str(figures['map']))}</code><br>Ground truth: <code>{esc(str(figures['ground_truth']))}</code><br>
Labelled pixels: {figures['labelled_pixels']} ({figures['positive_pixels']} positive); unlabelled value: {esc(str(figures['unlabelled_value']))}; {esc(how)}.</p>
<h2>Figures</h2><table>{rows}</table>
<h2>Objects</h2>
<p>Objects are 8-connected regions: of the ground truth's, and of the detected pixels.</p>
<table><tr><th>Ground-truth objects hit</th><td>{figures['objects_hit']} of {figures['truth_objects']} ({100 * figures['objects_hit_share']:.1f} %)</td></tr>
<tr><th>Detected objects</th><td>{figures['detected_objects']}</td></tr>
<tr><th>False objects (touching no ground-truth object)</th><td>{figures['false_objects']}</td></tr></table>
<h2>Confusion matrix</h2>
<table><tr><th></th><th>predicted positive</th><th>predicted negative</th></tr>
<tr><th>truly positive</th><td>{c['tp']}</td><td>{c['fn']}</td></tr>
<tr><th>truly negative</th><td>{c['fp']}</td><td>{c['tn']}</td></tr></table>
<h2>ROC curve</h2><img alt="ROC curve" src="data:image/png;base64,{png}">
<p style="color:#777">hsi-detect {__version__}, {datetime.datetime.now().isoformat(timespec='seconds')}</p>
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
