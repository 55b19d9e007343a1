"""Figures for the report (matplotlib Agg + seaborn), each also a CLI subcommand:

    python -m liverbench.evaluation.figures summary --metrics metrics/*.csv --out-dir DIR
        -> DIR/metrics_boxplot.png, DIR/runtime.png, DIR/accuracy_runtime.png
    python -m liverbench.evaluation.figures overlays --pair A__B --ncect F --liver F \\
        --predictions regsegnet=FILE identity=FILE ... --out P        (one pair per call)
    python -m liverbench.evaluation.figures checkerboard --fixed F --moving M --warped W --out P
    python -m liverbench.evaluation.figures training --csv losses.csv --out P [--title T]
    python -m liverbench.evaluation.figures displacement --metrics M... --baseline rigid.csv \\
        --out P --csv C           (liverbench.evaluation.displacement)

Every function that draws returns the Figure (so tests can look inside it); `save_figure`
writes it atomically as PNG and closes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from scipy import ndimage  # noqa: E402

from liverbench.cli import command  # noqa: E402
from liverbench.data.io import (  # noqa: E402
    ImageError,
    atomic_path,
    geometry_summary,
    read_image,
    read_mask,
    same_geometry,
)
from liverbench.errors import InputError  # noqa: E402
from liverbench.evaluation import displacement  # noqa: E402
from liverbench.evaluation.agreement import lsf_bland_altman  # noqa: E402

BOX_METRICS = ("dsc", "fnr", "fpr", "msd", "assd", "hd95", "rvd", "lsf_abs_error")
AXIS_LABELS = {
    "dsc": "DSC",
    "fnr": "FNR (paper: FN/|GT∪P|)",
    "fpr": "FPR (paper: FP/|GT∪P|)",
    "msd": "MSD, maximum (mm)",
    "assd": "ASSD (mm)",
    "hd95": "HD95 (mm)",
    "rvd": "RVD",
    "lsf_abs_error": "|LSF error| (pp)",
    "seconds_core": "core: network or registration (s)",
    "seconds_case": "case: images read to mask written (s)",
}
CT_WINDOW = (-160.0, 240.0)  # abdominal window, HU
# Working-grid pair images are already windowed to [0, 1] by preprocessing (`preprocess.window`):
# the HU window would paint every panel one grey.
PAIR_WINDOW = (0.0, 1.0)
GROUP_COLUMNS = ("cascade", "stage")
BOOKKEEPING_COLUMNS = ("iterations", "iteration", "step", "seconds", "time", "lr")


# One bright colour for every overlay panel (each shows one method): the palette's tenth
# and later colours repeat, and its grey vanished on the CT.
CONTOUR = "#ffd000"


def palette(methods: Sequence[str]) -> dict[str, tuple]:
    """One colour per method, the same in every figure (the order of `methods`): the
    colour-blind palette while its 10 colours suffice, then tab20's 20 (the colour-blind one
    repeats itself past 10, and the demo has 12 methods)."""
    n = max(len(methods), 1)
    colours = sns.color_palette("colorblind" if n <= 10 else "tab20", n_colors=n)
    return dict(zip(methods, colours))


def legend_outside(ax: Axes) -> None:
    """The legend right of the axes, where it hides no point (a dozen methods fill a corner)."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a PNG atomically and close the figure."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path


def _boxplot(**kwargs) -> None:
    """sns.boxplot without the deprecation noise seaborn 0.13.2 triggers in matplotlib 3.11."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="vert: bool was deprecated")
        sns.boxplot(**kwargs)


def _labels(methods: Sequence[str], labels: Mapping[str, str] | None) -> list[str]:
    labels = labels or {}
    return [str(labels.get(m, m)) for m in methods]


# ----------------------------------------------------------------------------- summaries


def load_metric_frames(paths: Sequence[str | os.PathLike]) -> tuple[pd.DataFrame, list[str]]:
    """Concatenate per-method metric CSVs; the method order is the file order."""
    from liverbench.evaluation.metric_frame import load_metrics

    return load_metrics(paths)


def metric_boxplots(
    frame: pd.DataFrame,
    methods: Sequence[str],
    metrics: Sequence[str] = BOX_METRICS,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """One panel per metric with values (a cohort without SPECT has no LSF error, one without
    a true motion no TRE): a box per method plus the individual test pairs as points."""
    data = frame[frame["status"] != "missing"]
    metrics = [m for m in metrics if m in data and data[m].notna().any()]
    colours = palette(methods)
    ncols = min(4, len(metrics))
    nrows = int(np.ceil(len(metrics) / ncols))
    figure, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.2 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        _boxplot(data=data, x="method", y=metric, hue="method", order=methods,
                    hue_order=methods, palette=colours, showfliers=False, ax=ax, legend=False,
                    boxprops={"alpha": 0.5})
        sns.stripplot(data=data, x="method", y=metric, hue="method", order=methods,
                      hue_order=methods, palette=colours, ax=ax, legend=False, size=4,
                      jitter=0.15, edgecolor="black", linewidth=0.4)
        ax.set_xticks(range(len(methods)), _labels(methods, labels), rotation=30, ha="right")
        ax.set_xlabel("")
        ax.set_ylabel(AXIS_LABELS.get(metric, metric))
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    figure.suptitle("Per-pair metrics by method (test pairs; missing predictions left out)")
    figure.tight_layout()
    return figure


def runtime_plot(
    frame: pd.DataFrame, methods: Sequence[str], labels: Mapping[str, str] | None = None
) -> Figure:
    """Seconds per case on both scopes (core, case), on a log axis."""
    colours = palette(methods)
    width = max(9.0, 1.0 * len(methods))  # room for one rotated label per method
    figure, axes = plt.subplots(1, 2, figsize=(width, 4.8), sharey=True)
    for ax, column in zip(axes, ("seconds_core", "seconds_case")):
        data = frame[np.isfinite(frame[column]) & (frame[column] > 0)]
        _boxplot(data=data, x="method", y=column, hue="method", order=methods,
                    hue_order=methods, palette=colours, showfliers=False, ax=ax, legend=False,
                    boxprops={"alpha": 0.5}, log_scale=True)
        sns.stripplot(data=data, x="method", y=column, hue="method", order=methods,
                      hue_order=methods, palette=colours, ax=ax, legend=False, size=4,
                      edgecolor="black", linewidth=0.4)
        ax.set_xticks(range(len(methods)), _labels(methods, labels), rotation=30, ha="right")
        ax.set_xlabel("")
        ax.set_title(AXIS_LABELS[column].removesuffix(" (s)"), fontsize="medium")
        ax.set_ylabel("seconds per case (log scale)" if ax is axes[0] else "")
    figure.suptitle("Runtime per test case")
    figure.tight_layout()
    return figure


def accuracy_runtime_plot(
    frame: pd.DataFrame, methods: Sequence[str], labels: Mapping[str, str] | None = None
) -> Figure:
    """Mean DSC against mean runtime per case (the case scope, every step included), one
    point per method, ±1 std error bars."""
    colours = palette(methods)
    figure, ax = plt.subplots(figsize=(9.0, 4.5))  # the legend beside it
    data = frame[frame["status"] != "missing"]
    for method, name in zip(methods, _labels(methods, labels)):
        rows = data[data["method"] == method]
        seconds = frame.loc[frame["method"] == method, "seconds_case"].dropna()
        dsc = rows["dsc"].dropna()
        if dsc.empty or seconds.empty or (seconds <= 0).all():
            continue
        ax.errorbar(seconds.mean(), dsc.mean(), xerr=seconds.std(ddof=1) if len(seconds) > 1
                    else None, yerr=dsc.std(ddof=1) if len(dsc) > 1 else None, fmt="o",
                    color=colours[method], capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("runtime per case, images read to mask written (s, log scale)")
    ax.set_ylabel("DSC (mean ± std)")
    ax.set_title("Accuracy against runtime")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        legend_outside(ax)
    figure.tight_layout()
    return figure


def write_summary_figures(
    metric_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    labels: Mapping[str, str] | None = None,
) -> list[Path]:
    frame, methods = load_metric_frames(metric_paths)
    out = Path(out_dir)
    return [
        save_figure(metric_boxplots(frame, methods, labels=labels), out / "metrics_boxplot.png"),
        save_figure(runtime_plot(frame, methods, labels), out / "runtime.png"),
        save_figure(accuracy_runtime_plot(frame, methods, labels), out / "accuracy_runtime.png"),
        save_figure(lsf_bland_altman(frame, methods, labels, palette(methods)),
                    out / "lsf_bland_altman.png"),
    ]


# ----------------------------------------------------------------------------- images


def _oriented(image: sitk.Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Array (z, y, x) in LPS orientation (axial slices shown radiologically) and spacing."""
    image = sitk.DICOMOrient(image, "LPS")
    return sitk.GetArrayFromImage(image), tuple(reversed(image.GetSpacing()))


def _window(array: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    low, high = window if window else np.percentile(array, [1, 99])
    return np.clip((array.astype(float) - low) / max(high - low, 1e-6), 0, 1)


def _slices(volume: np.ndarray, z: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """Axial slice at z (rows y, columns x) and coronal slice at y (rows z, columns x)."""
    return volume[z], volume[:, y, :]


def overlay_figure(
    ncect: sitk.Image,
    gt: sitk.Image,
    predictions: Mapping[str, sitk.Image | None],
    title: str = "",
    labels: Mapping[str, str] | None = None,
    window: tuple[float, float] | None = CT_WINDOW,
) -> Figure:
    """Small multiples: one column per method (axial above, coronal below, through the GT
    liver centroid), each with the dashed GT contour and that method's contour alone. Seven
    near-identical contours on one slice hid each other and the GT; one panel per method lets
    a reader compare each with the truth. A method without a prediction says so."""
    image, spacing = _oriented(ncect)
    truth, _ = _oriented(gt)
    if not truth.any():
        raise ValueError("ground-truth mask is empty: no centroid to slice through")
    z, y, _ = (int(round(c)) for c in ndimage.center_of_mass(truth))
    methods = list(predictions)
    names = _labels(methods, labels)
    columns = max(1, len(methods))
    figure, axes = plt.subplots(2, columns, figsize=(2.3 * columns + 0.4, 5.0), squeeze=False)
    aspects = (spacing[1] / spacing[2], spacing[0] / spacing[2])
    pictures = _slices(_window(image, window), z, y)
    truth_slices = _slices(truth, z, y)
    for column, (method, name) in enumerate(zip(methods, names)):
        prediction = predictions[method]
        masks = _slices(_oriented(prediction)[0], z, y) if prediction is not None else None
        for row, view in enumerate(("axial", "coronal")):
            ax = axes[row][column]
            ax.imshow(pictures[row], cmap="gray", vmin=0, vmax=1, aspect=aspects[row],
                      origin="upper" if view == "axial" else "lower", interpolation="nearest")
            ax.axis("off")
            if truth_slices[row].any():
                ax.contour(truth_slices[row], levels=[0.5], colors=["white"], linewidths=1.2,
                           linestyles="--")
            if masks is not None and masks[row].any():
                ax.contour(masks[row], levels=[0.5], colors=[CONTOUR], linewidths=1.4)
            if row == 0:
                ax.set_title(name if prediction is not None else f"{name} (missing)",
                             fontsize="small", color="black" if prediction is not None
                             else "0.5")
    handles = [Line2D([], [], color="black", lw=1.2, ls="--", label="ground truth"),
               Line2D([], [], color=CONTOUR, lw=1.4, label="the panel's method")]
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize="small")
    figure.suptitle(title or "nCECT with liver contours")
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


def write_overlay(
    pair: str,
    ncect_path: str | os.PathLike,
    liver_path: str | os.PathLike,
    predictions: Mapping[str, str | os.PathLike],
    out: str | os.PathLike,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """One pair's PNG: its nCECT with the GT and every method's prediction (an absent
    prediction file is shown as missing)."""
    ncect = read_image(ncect_path)
    gt = read_mask(liver_path, ncect, ncect_path)
    masks: dict[str, sitk.Image | None] = {}
    for method, path in predictions.items():
        masks[method] = read_mask(path, gt, liver_path, allow_empty=True) \
            if Path(path).exists() else None
    figure = overlay_figure(ncect, gt, masks, title=f"pair {pair}", labels=labels)
    return save_figure(figure, out)


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Alternate square tiles of two same-shape 2-D images."""
    rows, cols = a.shape
    size = max(1, int(np.ceil(max(rows, cols) / tiles)))
    pattern = ((np.arange(rows)[:, None] // size) + (np.arange(cols)[None, :] // size)) % 2
    return np.where(pattern == 0, a, b)


def checkerboard_figure(
    fixed: sitk.Image,
    moving: sitk.Image,
    warped: sitk.Image,
    title: str = "",
    tiles: int = 8,
    window: tuple[float, float] | None = PAIR_WINDOW,
) -> Figure:
    """Checkerboards of the fixed nCECT with the moving CECT before (resampled to the nCECT
    grid through the shared pre-alignment only) and after registration (warped), axial and coronal
    slices through the volume centre. All three images must share the nCECT grid."""
    for name, image in (("moving", moving), ("warped", warped)):
        if not same_geometry(fixed, image):
            raise ImageError(f"{name} image is not on the fixed grid: {geometry_summary(image)} "
                             f"vs {geometry_summary(fixed)}")
    arrays = []
    for image in (fixed, moving, warped):
        array, spacing = _oriented(image)
        arrays.append(_window(array, window))
    f, m, w = arrays
    z, y = f.shape[0] // 2, f.shape[1] // 2
    aspects = (spacing[1] / spacing[2], spacing[0] / spacing[2])
    figure, axes = plt.subplots(2, 2, figsize=(9, 8))
    for column, (other, label) in enumerate(((m, "before registration"),
                                             (w, "after registration"))):
        for row, (fixed_slice, other_slice) in enumerate(zip(_slices(f, z, y),
                                                             _slices(other, z, y))):
            ax = axes[row, column]
            ax.imshow(checkerboard(fixed_slice, other_slice, tiles), cmap="gray", vmin=0,
                      vmax=1, aspect=aspects[row], origin="upper" if row == 0 else "lower")
            ax.set_title(f"{('axial', 'coronal')[row]}, {label}")
            ax.axis("off")
    figure.suptitle(title or "nCECT / CECT checkerboard")
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- training


def training_curves(
    losses: pd.DataFrame, title: str = "", columns: Sequence[str] | None = None
) -> Figure:
    """One panel per numeric loss column against `epoch`; one line per `cascade`/`stage`
    group when such a column exists. By default every numeric column but bookkeeping ones
    (BOOKKEEPING_COLUMNS: iteration counts, timings, learning rate)."""
    if "epoch" not in losses.columns:
        raise ValueError("training CSV needs an 'epoch' column")
    if losses.empty:  # a model brought, not trained here (nnunet.pretrained_model)
        figure, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no training in this run: the model was imported",
                ha="center", va="center")
        ax.set_axis_off()
        figure.suptitle(title or "Training curves")
        return figure
    group = next((c for c in GROUP_COLUMNS if c in losses.columns), None)
    if columns is None:
        columns = [c for c in losses.columns if c not in ("epoch", group, *BOOKKEEPING_COLUMNS)
                   and pd.api.types.is_numeric_dtype(losses[c])]
    else:
        absent = [c for c in columns if c not in losses.columns]
        if absent:
            raise ValueError(f"training CSV lacks the columns {absent}")
    if not columns:
        raise ValueError("training CSV has no numeric loss column besides 'epoch'")
    data = losses.assign(**{group: losses[group].astype(str)}) if group else losses
    ncols = min(3, len(columns))
    nrows = int(np.ceil(len(columns) / ncols))
    figure, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.2 * nrows), squeeze=False)
    for ax, column in zip(axes.flat, columns):
        sns.lineplot(data=data, x="epoch", y=column, hue=group, marker="o", ax=ax,
                     palette="colorblind" if group else None, errorbar=None)
        ax.set_title(column)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.remove()
    figure.suptitle(title or "Training curves")
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- CLI


def _key_values(items: Sequence[str]) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--predictions: expected METHOD=FILE, got {item!r}")
        result[key] = value
    return result


def _labels_json(text: str) -> dict[str, str]:
    try:
        labels = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"--labels-json: not valid JSON ({error})") from error
    if not isinstance(labels, dict):
        raise InputError("--labels-json: must be an object {method: label}")
    return labels


def _summary(args: argparse.Namespace) -> None:
    _print(write_summary_figures(args.metrics, args.out_dir, _labels_json(args.labels_json)))


def _overlays(args: argparse.Namespace) -> None:
    _print([write_overlay(args.pair, args.ncect, args.liver, _key_values(args.predictions),
                          args.out, _labels_json(args.labels_json))])


def _checkerboard(args: argparse.Namespace) -> None:
    figure = checkerboard_figure(read_image(args.fixed), read_image(args.moving),
                                 read_image(args.warped), title=args.title)
    _print([save_figure(figure, args.out)])


def _training(args: argparse.Namespace) -> None:
    figure = training_curves(pd.read_csv(args.csv), args.title, args.columns)
    _print([save_figure(figure, args.out)])


def _displacement(args: argparse.Namespace) -> None:
    _print(displacement.write_displacement(args.metrics, args.baseline, args.out, args.csv,
                              _labels_json(args.labels_json)))


def _print(written: Sequence[Path]) -> None:
    print("\n".join(str(path) for path in written))


DESCRIPTION = ("Figures of the report: summaries, contour overlays, checkerboards, training, "
               "cranio-caudal displacement.")
PROG = "python -m liverbench.evaluation.figures"


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the figure subcommands (also under `python -m liverbench.evaluation figures`)."""
    sub = parser.add_subparsers(dest="figure", required=True)
    p = sub.add_parser("summary", help="box plots, runtime, accuracy vs runtime")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--labels-json", default="{}", help='{"method": "display name"}')
    p.set_defaults(func=_summary)
    p = sub.add_parser("overlays", help="one pair's nCECT with every method's contour")
    p.add_argument("--pair", required=True, help="pair id MOVING__FIXED (in the title)")
    p.add_argument("--ncect", required=True, help="the fixed nCECT")
    p.add_argument("--liver", required=True, help="its ground-truth liver mask")
    p.add_argument("--predictions", nargs="+", required=True,
                   help="METHOD=FILE ... (an absent FILE: shown as missing)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--labels-json", default="{}")
    p.set_defaults(func=_overlays)
    p = sub.add_parser("checkerboard", help="registration checkerboard before/after")
    for name in ("fixed", "moving", "warped", "out"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--title", default="")
    p.set_defaults(func=_checkerboard)
    p = sub.add_parser("training", help="training curves from a loss CSV")
    p.add_argument("--csv", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--columns", nargs="+", help="loss columns to plot (default: all numeric)")
    p.set_defaults(func=_training)
    p = sub.add_parser("displacement", help="displacement beyond the pre-alignment vs truth")
    displacement.configure(p).set_defaults(func=_displacement)
    return parser


main = command(PROG, DESCRIPTION, configure)


if __name__ == "__main__":
    sys.exit(main())
