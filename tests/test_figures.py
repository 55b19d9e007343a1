"""Figures render on tiny inputs into valid, non-blank PNGs."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from liverbench.data.io import ImageError
from liverbench.evaluation.agreement import limits_of_agreement, lsf_bland_altman
from liverbench.evaluation.evaluate import COLUMNS
from liverbench.evaluation.figures import (
    BOX_METRICS,
    checkerboard,
    checkerboard_figure,
    main,
    metric_boxplots,
    overlay_figure,
    save_figure,
    training_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METHODS = ["regsegnet", "elastix_cnn", "identity"]


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels[..., :3].std() > 0.01  # not a blank canvas


def write_metrics(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for k, method in enumerate(METHODS):
        rows = []
        for i in range(4):
            pair = f"P{i}__P{i}"
            row = {c: rng.uniform(0.05, 0.2) for c in COLUMNS}
            row.update(method=method, pair=pair, moving=f"P{i}", fixed=f"P{i}", status="ok",
                       dsc=rng.uniform(0.8, 0.95), msd=rng.uniform(10, 60),
                       seconds_core=10.0 ** (k - 1) * rng.uniform(1, 2),
                       seconds_case=10.0 ** k, device="cpu")
            rows.append(row)
        rows[-1].update(status="missing", dsc=np.nan) if method == "identity" else None
        path = tmp_path / f"{method}.csv"
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(path, index=False)
        paths.append(path)
    return paths


def image(array, dtype, spacing=(1.5, 1.5, 4.0)):
    result = sitk.GetImageFromArray(array.astype(dtype))
    result.SetSpacing(spacing)
    return result


def phantom():
    z, y, x = np.mgrid[:12, :32, :32]
    liver = ((z - 6) / 4) ** 2 + ((y - 16) / 9) ** 2 + ((x - 14) / 10) ** 2 < 1
    ct = np.where(liver, 55, -20) + np.random.default_rng(1).normal(0, 15, liver.shape)
    return liver, ct


def test_summary_cli_and_box_count(tmp_path):
    paths = write_metrics(tmp_path)
    labels = {"regsegnet": "RegSegNet"}
    assert main(["summary", "--metrics", *map(str, paths), "--out-dir", str(tmp_path / "f"),
                 "--labels-json", json.dumps(labels)]) == 0
    for name in ("metrics_boxplot.png", "runtime.png", "accuracy_runtime.png",
                 "lsf_bland_altman.png"):
        assert_png(tmp_path / "f" / name)
    from liverbench.evaluation.metric_frame import load_metrics

    frame, methods = load_metrics(paths)
    figure = metric_boxplots(frame, methods, labels=labels)
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert len(visible) == len(BOX_METRICS)
    ticks = [t.get_text() for t in visible[0].get_xticklabels()]
    assert ticks == ["RegSegNet", "elastix_cnn", "identity"]
    save_figure(figure, tmp_path / "again.png")


def test_overlays_cli(tmp_path):
    liver, ct = phantom()
    case = tmp_path / "cases" / "P1"
    case.mkdir(parents=True)
    sitk.WriteImage(image(ct, np.int16), str(case / "ncect.nii.gz"))
    sitk.WriteImage(image(liver, np.uint8), str(case / "ncect_liver.nii.gz"))
    for method, shift in (("regsegnet", 1), ("identity", 4)):
        folder = tmp_path / "pred" / method
        folder.mkdir(parents=True)
        sitk.WriteImage(image(np.roll(liver, shift, axis=2), np.uint8),
                        str(folder / "P1__P1.nii.gz"))
    # elastix_cnn has no prediction file: shown as missing
    argv = ["overlays", "--pair", "P1__P1", "--ncect", str(case / "ncect.nii.gz"),
            "--liver", str(case / "ncect_liver.nii.gz"),
            "--predictions", *(f"{m}={tmp_path / 'pred' / m / 'P1__P1.nii.gz'}" for m in METHODS),
            "--out", str(tmp_path / "overlays" / "P1__P1.png")]
    assert main(argv) == 0
    assert_png(tmp_path / "overlays" / "P1__P1.png")


def test_bad_input_exits_2(tmp_path, capsys):
    argv = ["overlays", "--pair", "P1__P1", "--ncect", str(tmp_path / "absent.nii.gz"),
            "--liver", "x", "--predictions", "a=b", "--out", str(tmp_path / "o.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m liverbench.evaluation.figures: ")
    assert "absent.nii.gz" in err and len(err.strip().splitlines()) == 1
    assert main(["training", "--csv", str(tmp_path / "none.csv"), "--out", "t.png"]) == 2
    assert main(["summary", "--metrics", "m.csv", "--out-dir", str(tmp_path),
                 "--labels-json", "[1]"]) == 2
    assert "--labels-json" in capsys.readouterr().err


def test_overlay_has_one_panel_column_per_method_with_its_contour():
    liver, ct = phantom()
    gt = image(liver, np.uint8)
    shifted = image(np.roll(liver, 4, axis=2), np.uint8)
    figure = overlay_figure(image(ct, np.int16), gt, {"a": gt, "b": shifted, "c": None})
    axes = np.array(figure.axes).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0]] == ["a", "b", "c (missing)"]
    # every panel shows the image; a predicted panel adds its own contour to the GT's
    for row in axes:
        assert all(ax.images and ax.images[0].get_array().std() > 0.01 for ax in row)
        assert len(row[1].collections) == 2 and len(row[2].collections) == 1
    a_path = axes[0][0].collections[-1].get_paths()[0].vertices
    b_path = axes[0][1].collections[-1].get_paths()[0].vertices
    assert abs(b_path[:, 0].mean() - a_path[:, 0].mean()) > 2  # the shift shows


def test_checkerboard(tmp_path):
    a, b = np.zeros((5, 6)), np.ones((5, 6))
    board = checkerboard(a, b, tiles=3)
    assert board[0, 0] == 0 and board[0, 2] == 1 and board[2, 2] == 0
    liver, ct = phantom()
    fixed = image(ct, np.float32)
    moving = image(np.roll(ct, 3, axis=1), np.float32)
    warped = image(np.roll(ct, 1, axis=1), np.float32)
    assert main(["checkerboard", "--fixed", str(_write(fixed, tmp_path / "f.nii.gz")),
                 "--moving", str(_write(moving, tmp_path / "m.nii.gz")),
                 "--warped", str(_write(warped, tmp_path / "w.nii.gz")),
                 "--out", str(tmp_path / "cb.png")]) == 0
    assert_png(tmp_path / "cb.png")
    other = image(ct, np.float32, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ImageError, match="moving image is not on the fixed grid"):
        checkerboard_figure(fixed, other, warped)


def test_checkerboard_of_a_pair_shows_contrast_and_the_registration():
    """Pair images are windowed to [0, 1]: the panels must show tissue, not one grey, and
    the warped panels must differ from the pre-aligned ones."""
    liver, ct = phantom()
    normalised = np.clip((ct + 160.0) / 400.0, 0.0, 1.0)  # as preprocessing writes pairs
    fixed = image(normalised, np.float32)
    moving = image(np.roll(normalised, 4, axis=2), np.float32)
    warped = image(normalised, np.float32)
    figure = checkerboard_figure(fixed, moving, warped)
    panels = [np.asarray(ax.images[0].get_array(), dtype=float) for ax in figure.axes]
    assert all(panel.std() > 0.02 for panel in panels), [panel.std() for panel in panels]
    before, after = panels[0], panels[1]  # axial, before and after registration
    assert np.abs(before - after).mean() > 0.01


def _write(img, path):
    sitk.WriteImage(img, str(path))
    return path


def test_training_curves(tmp_path):
    rows = [{"epoch": e, "cascade": c, "loss": 1 / (e + c), "dice": 0.5 + 0.1 * e,
             "note": "x", "seconds": 3.0} for e in range(1, 4) for c in (1, 2, 3)]
    csv = tmp_path / "losses.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    assert main(["training", "--csv", str(csv), "--out", str(tmp_path / "t.png")]) == 0
    assert_png(tmp_path / "t.png")
    figure = training_curves(pd.DataFrame(rows))
    assert len(figure.axes) == 2  # loss and dice; text and bookkeeping columns are ignored
    # a model imported, not trained here (nnunet.pretrained_model): a figure that says so
    empty = tmp_path / "empty.csv"
    empty.write_text("stage,epoch,train_loss,val_loss,pseudo_dice,ema_pseudo_dice\n")
    assert main(["training", "--csv", str(empty), "--out", str(tmp_path / "e.png")]) == 0
    assert_png(tmp_path / "e.png")
    texts = [t.get_text() for t in training_curves(pd.read_csv(empty)).axes[0].texts]
    assert texts == ["no training in this run: the model was imported"]
    assert len(training_curves(pd.DataFrame(rows), columns=["loss"]).axes) == 1
    assert len(figure.axes[0].get_lines()) >= 3  # one line per cascade
    plain = training_curves(pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0]}))
    assert len(plain.axes) == 1
    with pytest.raises(ValueError, match="epoch"):
        training_curves(pd.DataFrame({"loss": [1.0]}))


def write_centroids(tmp_path, rng):
    """Metric CSVs with liver centroids: `follows` adds the true displacement beyond rigid,
    `shifts` a fixed 20 mm whatever it is, `rigid` is the pre-alignment alone."""
    true = np.array([-6.0, 2.0, 9.5, 14.0, 21.0, 28.7])
    rigid_z = rng.uniform(-40, 40, true.size)
    gt_z = rigid_z + true
    added = {"follows": true + rng.normal(0, 1.0, true.size),
             "shifts": 20.0 + rng.normal(0, 0.5, true.size), "rigid": np.zeros(true.size)}
    paths = {}
    for method, shift in added.items():
        pred_z = rigid_z + shift
        rows = [{c: 0.1 for c in COLUMNS} | {
            "method": method, "pair": f"P{i}__P{i}", "moving": f"P{i}", "fixed": f"P{i}",
            "status": "ok", "device": "cpu", "tre_mean_mm": 1.0, "tre_p95_mm": 2.0,
            "centroid_error_mm": abs(pred_z[i] - gt_z[i]), "pred_centroid_z_mm": pred_z[i],
            "gt_centroid_z_mm": gt_z[i]} for i in range(true.size)]
        rows[0].update(status="missing", pred_centroid_z_mm=np.nan) if method == "follows" \
            else None
        paths[method] = tmp_path / f"{method}.csv"
        pd.DataFrame(rows).to_csv(paths[method], index=False)
    return paths, true, added


def test_displacement_figure_and_correlations(tmp_path):
    paths, true, added = write_centroids(tmp_path, np.random.default_rng(3))
    out, csv = tmp_path / "figures" / "displacement.png", tmp_path / "figures" / "d.csv"
    assert main(["displacement", "--metrics", str(paths["follows"]), str(paths["shifts"]),
                 "--baseline", str(paths["rigid"]), "--out", str(out), "--csv", str(csv),
                 "--labels-json", json.dumps({"follows": "Follows"})]) == 0
    assert_png(out)
    summary = pd.read_csv(csv).set_index("method")
    assert list(summary.index) == ["follows", "shifts"]
    assert summary.loc["follows", "n"] == 5  # its missing prediction is left out
    expected = np.corrcoef(true[1:], added["follows"][1:])[0, 1]
    assert summary.loc["follows", "pearson_r"] == pytest.approx(expected)
    assert summary.loc["follows", "pearson_r"] > 0.95
    assert abs(summary.loc["shifts", "pearson_r"]) < 0.9  # a constant shift does not follow
    assert summary.loc["shifts", "mean_added_mm"] == pytest.approx(20, abs=0.5)
    assert summary.loc["follows", "label"] == "Follows"

    from liverbench.evaluation.displacement import agreement, displacement_figure, displacements
    from liverbench.evaluation.metric_frame import load_metrics

    frame, _ = load_metrics([paths["follows"], paths["shifts"]])
    data = displacements(frame, load_metrics([paths["rigid"]])[0])
    figure = displacement_figure(data, agreement(data, ["follows", "shifts"]))
    points = [c.get_offsets() for c in figure.axes[0].collections]
    assert [len(p) for p in points] == [5, 6]
    np.testing.assert_allclose(points[1][:, 0], true)  # x: the true displacement
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend[1].startswith("follows (r = ") and "n = 5" in legend[1]
    assert _legend_is_beside(figure)  # it hides no point


def test_displacement_needs_centroid_columns(tmp_path, capsys):
    paths = write_metrics(tmp_path)  # a cohort without a true motion
    assert main(["displacement", "--metrics", str(paths[0]), "--baseline", str(paths[1]),
                 "--out", str(tmp_path / "d.png"), "--csv", str(tmp_path / "d.csv")]) == 2
    assert "no liver-centroid columns" in capsys.readouterr().err


def test_bland_altman_shows_each_methods_bias_and_limits():
    rng = np.random.default_rng(0)
    truth = rng.uniform(3, 15, 8)
    frame = pd.DataFrame({
        "method": ["exact"] * 8 + ["biased"] * 8,
        "lsf_gt": np.concatenate([truth, truth]),
        "lsf_pred": np.concatenate([truth + rng.normal(0, 0.1, 8),
                                    truth + 2.0 + rng.normal(0, 0.5, 8)]),
    })
    figure = lsf_bland_altman(frame, ["exact", "biased"])
    exact, biased = figure.axes[:2]
    assert len(exact.collections[0].get_offsets()) == 8  # one point per pair
    bias = {ax: ax.get_legend().get_texts()[0].get_text() for ax in (exact, biased)}
    assert bias[exact].startswith("bias +0.0") or bias[exact].startswith("bias -0.0")
    assert bias[biased].startswith("bias +2") or bias[biased].startswith("bias +1.9")
    # each panel fits its own differences: the exact method's are not flattened by the other's
    assert exact.get_ylim()[1] - exact.get_ylim()[0] < 1.0 < biased.get_ylim()[1]
    bias_value, low, high = limits_of_agreement(frame.lsf_pred[8:] - frame.lsf_gt[8:])
    assert low < bias_value < high and high - low < 4


def _legend_is_beside(figure) -> bool:
    """The legend lies wholly right of the axes (drawn, in display units)."""
    figure.canvas.draw()
    ax = figure.axes[0]
    return ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_a_dozen_methods_keep_distinct_colours_and_an_unhidden_legend():
    """The demo scores 12 methods: the colour-blind palette repeats past 10 (identity and
    nnU-Net were one blue), and an in-axes legend covered half the accuracy-runtime points."""
    from liverbench.evaluation.figures import accuracy_runtime_plot, palette

    methods = [f"m{k}" for k in range(12)]
    assert len(set(palette(methods).values())) == 12
    assert len(set(palette(methods[:10]).values())) == 10
    rng = np.random.default_rng(3)
    frame = pd.DataFrame([{"method": m, "pair": f"P{i}__P{i}", "status": "ok",
                           "dsc": rng.uniform(0.7, 0.95), "seconds_case": 10.0 ** (k / 4)}
                          for k, m in enumerate(methods) for i in range(3)])
    figure = accuracy_runtime_plot(frame, methods)
    assert len(figure.axes[0].get_legend().get_texts()) == 12
    assert _legend_is_beside(figure)


def test_summary_of_a_cohort_without_spect_or_truth(tmp_path):
    """A test cohort with only the four required images: no LSF and no TRE values. The
    summary figures still render, without panels for what the cohort cannot measure."""
    import pandas as pd

    paths = write_metrics(tmp_path)
    for path in paths:
        frame = pd.read_csv(path)
        for column in frame.columns:
            if column.startswith(("lsf_", "tre_")):
                frame[column] = np.nan
        frame.to_csv(path, index=False)
    assert main(["summary", "--metrics", *map(str, paths), "--out-dir",
                 str(tmp_path / "f")]) == 0
    assert_png(tmp_path / "f" / "metrics_boxplot.png")
    from liverbench.evaluation.metric_frame import load_metrics

    frame, methods = load_metrics(paths)
    visible = [ax for ax in metric_boxplots(frame, methods).axes if ax.get_visible()]
    assert len(visible) == len(BOX_METRICS) - 1  # no LSF panel
