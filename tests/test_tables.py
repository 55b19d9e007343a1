"""Tables and statistics, with every number recomputed here from the per-case CSVs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from liverbench.evaluation.evaluate import COLUMNS
from liverbench.evaluation.settings import Settings
from liverbench.evaluation.statistics import (
    bootstrap_ci,
    holm,
    paired_wilcoxon,
    summarize,
)
from liverbench.evaluation.tables import main, paper_cell, write_tables

PAIRS = [f"P{i:02d}__P{i:02d}" for i in range(1, 9)]
PAPER = {
    "citation": "Pham et al., RegSegNet, MIDL 2024 short paper, Table 1",
    "rows": [
        {"method": "Revised Deepmedic", "dsc": "0.91±0.03", "fnr": "0.03±0.01",
         "fpr": "0.14±0.05", "msd": "143.16±61.7", "runtime": "27.8 sec"},
        {"method": "Elastix + CNN", "dsc": [0.93, 0.01], "fnr": {"mean": 0.07, "std": 0.02},
         "fpr": "0.06 ± 0.03", "msd": "32±26", "runtime": "~122 sec"},
        {"method": "RegSegNet", "dsc": 0.92, "fnr": "0.07±0.02", "fpr": "0.08±0.03",
         "msd": "70.82±11.55", "runtime": 0.8},
    ],
}


def method_frame(method: str, seed: int, missing=(), empty=()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for pair in PAIRS:
        moving, fixed = pair.split("__")
        fnr, fpr = rng.uniform(0.02, 0.1), rng.uniform(0.02, 0.1)
        row = {
            "method": method, "pair": pair, "moving": moving, "fixed": fixed, "status": "ok",
            "dsc": 2 * (1 - fnr - fpr) / (2 - fnr - fpr), "fnr": fnr, "fpr": fpr,
            "msd": rng.uniform(10, 80), "assd": rng.uniform(1, 5), "hd95": rng.uniform(5, 20),
            "rvd": rng.normal(0, 0.05), "lsf_gt": 5.0, "lsf_pred": 5 + rng.normal(0, 0.5),
            "seconds_core": rng.uniform(0.5, 2), "seconds_case": rng.uniform(3, 5),
            "device": "cpu", "threads": 2, "peak_memory_mb": 500.0,
        }
        row["stages"] = json.dumps({"pair.read": 1.0, "network": row["seconds_core"],
                                    "write": row["seconds_case"] - 1.0 - row["seconds_core"]})
        row["lsf_abs_error"] = abs(row["lsf_pred"] - row["lsf_gt"])
        if pair in missing:
            row.update({k: np.nan for k in row if k not in ("method", "pair", "moving",
                                                             "fixed", "lsf_gt", "device")})
            row["status"] = "missing"
        if pair in empty:
            row.update(status="empty", dsc=0.0, fnr=1.0, fpr=0.0, rvd=-1.0, msd=np.nan,
                       assd=np.nan, hd95=np.nan, lsf_pred=np.nan, lsf_abs_error=np.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


@pytest.fixture()
def metric_files(tmp_path):
    frames = {
        "regsegnet": method_frame("regsegnet", 1),
        "elastix_cnn": method_frame("elastix_cnn", 2, empty=[PAIRS[3]]),
        "identity": method_frame("identity", 3, missing=[PAIRS[0], PAIRS[5]]),
    }
    paths = []
    for name, frame in frames.items():
        path = tmp_path / "metrics" / f"{name}.csv"
        path.parent.mkdir(exist_ok=True)
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths, frames


CONFIG = {"reference_method": "regsegnet", "seed": 7, "bootstrap_samples": 500,
          "tested_methods": ["elastix_cnn", "identity"],
          "experiment": "unit", "paper_table1": PAPER,
          "method_labels": {"regsegnet": "RegSegNet", "elastix_cnn": "Elastix + CNN"}}


def test_table1_numbers_recomputed(metric_files, tmp_path):
    paths, frames = metric_files
    write_tables(paths, CONFIG, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "table1.csv")
    assert (table["source"] != "paper").all()  # printed numbers never in a measured column
    ours = table.set_index("method")
    assert list(ours.index) == ["regsegnet", "elastix_cnn", "identity"]
    for name, frame in frames.items():
        used = frame[frame["status"] != "missing"]
        for metric in ("dsc", "fnr", "fpr", "msd"):
            assert ours.loc[name, f"{metric}_mean"] == pytest.approx(used[metric].mean())
            assert ours.loc[name, f"{metric}_std"] == pytest.approx(used[metric].std())
        assert ours.loc[name, "runtime_core_mean"] == pytest.approx(
            frame["seconds_core"].mean())
        mean, std = used["dsc"].mean(), used["dsc"].std()
        assert ours.loc[name, "DSC"] == f"{mean:.2f} ± {std:.2f}"
    # empty prediction: DSC 0 enters the mean, MSD is over the 7 non-empty pairs
    assert ours.loc["elastix_cnn", "n_empty"] == 1
    assert ours.loc["elastix_cnn", "dsc_mean"] < frames["elastix_cnn"]["dsc"].drop(3).mean()
    paper = pd.read_csv(tmp_path / "out" / "table1_paper.csv").set_index("method")
    assert paper.loc["Revised Deepmedic", "msd_mean"] == pytest.approx(143.16)
    assert paper.loc["Revised Deepmedic", "msd_std"] == pytest.approx(61.7)
    assert paper.loc["Elastix + CNN", "runtime_s"] == pytest.approx(122)
    assert "runtime_core_mean" not in paper.columns


def test_missing_predictions_are_counted_and_named(metric_files, tmp_path):
    paths, _ = metric_files
    write_tables(paths, CONFIG, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "table1.csv").set_index("method")
    assert table.loc["identity", "n_missing"] == 2
    assert table.loc["identity", "n_pairs"] == 8
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "identity: 2 of 8 predictions missing" in md
    assert "only the 6 pairs" in md
    ext = (tmp_path / "out" / "table_extended.md").read_text()
    assert "identity: 2 of 8 predictions missing" in ext
    ext_csv = pd.read_csv(tmp_path / "out" / "table_extended.csv")
    row = ext_csv[(ext_csv.method == "identity") & (ext_csv.metric == "dsc")].iloc[0]
    assert (row["n"], row["n_missing"]) == (6, 2)


def test_paper_block_is_labelled_separately(metric_files, tmp_path):
    paths, _ = metric_files
    write_tables(paths, CONFIG, tmp_path / "out")
    md = (tmp_path / "out" / "table1.md").read_text()
    ours_at = md.index("## This benchmark (unit)")
    paper_at = md.index("## Paper (Pham et al., MIDL 2024, H108, private)")
    assert ours_at < paper_at
    assert "143.16 ± 61.7" in md[paper_at:] and "~122 sec" in md[paper_at:]
    assert "RegSegNet" in md[:paper_at] and "Elastix + CNN" in md[:paper_at]
    html = (tmp_path / "out" / "table1.html").read_text()
    assert '<section class="paper">' in html and "private" in html


def test_extended_wilcoxon_and_holm_match_scipy(metric_files, tmp_path):
    paths, frames = metric_files
    write_tables(paths, CONFIG, tmp_path / "out")
    ext = pd.read_csv(tmp_path / "out" / "table_extended.csv")
    ref = frames["regsegnet"].set_index("pair")
    p_values = {}
    for name in ("elastix_cnn", "identity"):
        other = frames[name]
        common = other[other["status"] != "missing"]["pair"]  # the empty one keeps DSC 0
        x = other.set_index("pair").loc[common, "dsc"]
        y = ref.loc[common, "dsc"]
        expected = stats.wilcoxon(x.to_numpy(), y.to_numpy())
        row = ext[(ext.method == name) & (ext.metric == "dsc")].iloc[0]
        assert row["n_paired"] == len(common)
        assert row["p_value"] == pytest.approx(expected.pvalue)
        assert row["statistic"] == pytest.approx(expected.statistic)
        p_values[name] = expected.pvalue
    lo, hi = sorted(p_values.values())
    holm_expected = {k: (min(1, 2 * lo) if v == lo else max(min(1, 2 * lo), hi))
                     for k, v in p_values.items()}
    for name, value in holm_expected.items():
        row = ext[(ext.method == name) & (ext.metric == "dsc")].iloc[0]
        assert row["p_holm"] == pytest.approx(value)
    ref_row = ext[(ext.method == "regsegnet") & (ext.metric == "dsc")].iloc[0]
    assert np.isnan(ref_row["p_value"])
    # summaries: median and IQR like numpy
    values = frames["identity"].query("status != 'missing'")["msd"]
    row = ext[(ext.method == "identity") & (ext.metric == "msd")].iloc[0]
    assert row["median"] == pytest.approx(values.median())
    assert (row["q1"], row["q3"]) == pytest.approx(tuple(np.percentile(values, [25, 75])))
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]


def test_reference_absent_skips_tests_with_note(metric_files, tmp_path):
    paths, _ = metric_files
    write_tables(paths[1:], {**CONFIG, "paper_table1": None}, tmp_path / "out")
    ext = pd.read_csv(tmp_path / "out" / "table_extended.csv")
    assert ext["p_value"].isna().all() and ext["p_holm"].isna().all()
    md = (tmp_path / "out" / "table_extended.md").read_text()
    assert "Paired tests skipped: the reference method 'regsegnet' is not among" in md
    assert "no paper_table1" in (tmp_path / "out" / "table1.md").read_text()


def test_outputs_deterministic(metric_files, tmp_path):
    paths, _ = metric_files
    write_tables(paths, CONFIG, tmp_path / "a")
    write_tables(paths, CONFIG, tmp_path / "b")
    for name in ("table1.csv", "table_extended.csv", "table1.tex"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def latex_columns(row: str) -> int:
    """Columns a tabular row occupies: unescaped & separators plus multicolumn spans."""
    cells = re.split(r"(?<!\\)&", row)
    total = 0
    for cell in cells:
        span = re.search(r"\\multicolumn\{(\d+)\}", cell)
        total += int(span.group(1)) if span else 1
    return total


def test_latex_is_a_valid_tabular_fragment(metric_files, tmp_path):
    paths, _ = metric_files
    write_tables(paths, CONFIG, tmp_path / "out")
    tex = (tmp_path / "out" / "table1.tex").read_text()
    unescaped = re.sub(r"\\[{}]", "", tex)
    depth = 0
    for ch in unescaped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert tex.count(r"\begin{tabular}") == 1 and tex.count(r"\end{tabular}") == 1
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    rows = [line for line in tex.splitlines() if line.rstrip().endswith(r"\\")]
    assert len(rows) == 1 + 2 + 3 + 3  # header, two block titles, 3 ours, 3 paper
    assert all(latex_columns(line) == len(spec) for line in rows)
    assert r"\_" in tex or "identity" in tex  # method ids are escaped
    assert "$\\pm$" in tex and "±" not in tex


def test_cli(metric_files, tmp_path, capsys):
    paths, _ = metric_files
    settings = {k: v for k, v in CONFIG.items() if k not in ("seed", "experiment")}
    argv = ["--metrics", *map(str, paths), "--settings", json.dumps(settings),
            "--experiment", CONFIG["experiment"], "--seed", str(CONFIG["seed"]),
            "--out-dir", str(tmp_path / "cli")]
    assert main(argv) == 0
    for name in ("table1.csv", "table1.md", "table1.tex", "table1.html",
                 "table_extended.csv", "table_extended.md", "table_extended.html"):
        assert (tmp_path / "cli" / name).stat().st_size > 0
    write_tables(paths, CONFIG, tmp_path / "lib")  # the CLI and the library agree
    for name in ("table1.csv", "table_extended.csv"):
        assert (tmp_path / "cli" / name).read_text() == (tmp_path / "lib" / name).read_text()
    assert main(["--metrics", str(paths[0]), str(paths[0]), "--out-dir", str(tmp_path / "x")]) == 2
    assert "appears in two metric files" in capsys.readouterr().err
    assert main(["--metrics", str(paths[0]), "--settings", '{"bootstrap_sample": 1}',
                 "--out-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m liverbench.evaluation.tables: evaluation.bootstrap_sample")


def with_truth(frame: pd.DataFrame, tre: float | None, seed: int) -> pd.DataFrame:
    """The registration-error columns of a cohort with a true motion (tre None: no mapping)."""
    rng = np.random.default_rng(seed)
    n = len(frame)
    gt_z = rng.uniform(-20, 20, n)
    pred_z = gt_z + rng.normal(0, 3, n)
    return frame.assign(
        tre_mean_mm=np.nan if tre is None else tre + rng.normal(0, 1, n),
        tre_p95_mm=np.nan if tre is None else tre + 5 + rng.normal(0, 1, n),
        centroid_error_mm=np.abs(pred_z - gt_z), pred_centroid_z_mm=pred_z,
        gt_centroid_z_mm=gt_z)


def test_registration_error_in_the_tables(metric_files, tmp_path):
    paths, frames = metric_files
    for path, (name, frame), tre in zip(paths, frames.items(), (3.0, None, 12.0)):
        frames[name] = with_truth(frame, tre, len(name))
        frames[name].to_csv(path, index=False)
    write_tables(paths, CONFIG, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "table1.csv")
    ours = table[table["source"] != "paper"].set_index("method")
    used = frames["regsegnet"]
    assert ours.loc["regsegnet", "tre_mean_mm_mean"] == pytest.approx(used["tre_mean_mm"].mean())
    assert ours.loc["regsegnet", "TRE (mm)"] == (
        f"{used['tre_mean_mm'].mean():.2f} ± {used['tre_mean_mm'].std():.2f}")
    assert ours.loc["elastix_cnn", "TRE (mm)"] == "–"  # no mapping
    paper = pd.read_csv(tmp_path / "out" / "table1_paper.csv")
    assert (paper["TRE (mm)"] == "–").all()  # no truth there
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "TRE (mm)" in md and "target registration error" in md
    tex = (tmp_path / "out" / "table1.tex").read_text()
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    assert len(spec) == 11 and all(latex_columns(line) == 11 for line in tex.splitlines()
                                   if line.rstrip().endswith(r"\\"))
    ext = pd.read_csv(tmp_path / "out" / "table_extended.csv")
    for metric in ("tre_mean_mm", "centroid_error_mm"):
        rows = ext[ext.metric == metric].set_index("method")
        assert list(rows.index) == ["regsegnet", "elastix_cnn", "identity"]
    identity = frames["identity"].query("status != 'missing'")
    centroid = ext[(ext.metric == "centroid_error_mm") & (ext.method == "identity")].iloc[0]
    assert centroid["mean"] == pytest.approx(identity["centroid_error_mm"].mean())
    assert "Liver centroid error (mm)" in (tmp_path / "out" / "table_extended.md").read_text()


def test_without_truth_no_registration_error(metric_files, tmp_path):
    paths, _ = metric_files
    write_tables(paths, CONFIG, tmp_path / "out")
    assert "TRE" not in (tmp_path / "out" / "table1.md").read_text()
    ext = pd.read_csv(tmp_path / "out" / "table_extended.csv")
    assert not {"tre_mean_mm", "centroid_error_mm"} & set(ext["metric"])


def test_defaults_come_from_the_evaluation_settings(metric_files, tmp_path):
    paths, _ = metric_files
    write_tables(paths, {"seed": 7}, tmp_path / "out")
    ext = (tmp_path / "out" / "table_extended.md").read_text()
    assert f"({Settings().bootstrap_samples} resamples, seeded)" in ext
    assert "against regsegnet" in ext


# ----------------------------------------------------------------------------- statistics


def test_holm_known_values():
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.5, np.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.5) and adjusted[2] == pytest.approx(0.02)
    assert np.isnan(adjusted[1])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 × 0.8 capped at 1, monotone
    assert holm([0.04, 0.3]) == pytest.approx([0.08, 0.3])


def test_wilcoxon_and_summaries():
    x = np.array([0.91, 0.93, 0.90, 0.95, 0.88, 0.92, 0.94, np.nan])
    y = np.array([0.90, 0.91, 0.86, 0.91, 0.87, 0.93, 0.89, 0.90])
    result = paired_wilcoxon(x, y)
    expected = stats.wilcoxon(x[:7], y[:7])
    assert result["n"] == 7 and result["p"] == pytest.approx(expected.pvalue)
    assert np.isnan(paired_wilcoxon([1, 2], [1, 2])["p"])
    s = summarize([1.0, 2.0, np.nan, 4.0])
    assert (s["n"], s["mean"], s["std"]) == (3, pytest.approx(7 / 3), pytest.approx(
        np.std([1, 2, 4], ddof=1)))
    assert bootstrap_ci([1.0, 2.0, 3.0], seed=1, n_resamples=200) == bootstrap_ci(
        [1.0, 2.0, 3.0], seed=1, n_resamples=200)
    assert np.isnan(bootstrap_ci([1.0], seed=1)[0])


def test_paper_cell_parsing():
    assert paper_cell("0.91±0.03")[0] == "0.91 ± 0.03"
    assert paper_cell("0.91±0.03")[1:] == (0.91, 0.03)
    assert paper_cell({"mean": 32, "std": 26})[0] == "32 ± 26"
    assert paper_cell("~122 sec")[1] == 122 and np.isnan(paper_cell("~122 sec")[2])
    assert paper_cell(None)[0] == "–"


def test_failed_and_empty_pairs_stay_in_the_paired_tests_ranked_worst(tmp_path):
    """A method that fails on the pairs it finds hard must not gain from it: the failed and
    the empty pair stay in the paired test, with DSC 0 and the worst observed distance."""
    frames = {"regsegnet": method_frame("regsegnet", 1),
              "elastix_cnn": method_frame("elastix_cnn", 2, empty=[PAIRS[3]])}
    failed = frames["elastix_cnn"].index[frames["elastix_cnn"]["pair"] == PAIRS[6]]
    frames["elastix_cnn"]["reason"] = ""
    frames["elastix_cnn"].loc[failed, ["status", "reason", "dsc", "fnr", "msd", "hd95"]] = [
        "failed", "elastix did not converge", 0.0, 1.0, np.nan, np.nan]
    paths = []
    for name, frame in frames.items():
        paths.append(tmp_path / f"{name}.csv")
        frame.to_csv(paths[-1], index=False)
    write_tables(paths, CONFIG, tmp_path / "out")
    ext = pd.read_csv(tmp_path / "out" / "table_extended.csv").set_index(["method", "metric"])
    assert ext.loc[("elastix_cnn", "msd"), "n_paired"] == len(PAIRS)
    worst = max(frames["regsegnet"]["msd"].max(), frames["elastix_cnn"]["msd"].max())
    x = frames["elastix_cnn"]["msd"].fillna(worst).to_numpy()
    expected = stats.wilcoxon(x, frames["regsegnet"]["msd"].to_numpy())
    assert ext.loc[("elastix_cnn", "msd"), "p_value"] == pytest.approx(expected.pvalue)
    table = pd.read_csv(tmp_path / "out" / "table1.csv").set_index("method")
    assert table.loc["elastix_cnn", "n_failed"] == 1
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "1 of 8 pairs failed" in md and "elastix did not converge" in md


def test_the_holm_family_is_the_tested_methods_only(metric_files, tmp_path):
    """By default identity (a bound) is shown without a test, so the Holm correction of
    elastix_cnn's p is over one comparison: its p_holm equals its p."""
    paths, _ = metric_files
    config = {k: v for k, v in CONFIG.items() if k != "tested_methods"}
    write_tables(paths, config, tmp_path / "out")
    ext = pd.read_csv(tmp_path / "out" / "table_extended.csv").set_index(["method", "metric"])
    assert np.isnan(ext.loc[("identity", "dsc"), "p_value"])
    assert ext.loc[("elastix_cnn", "dsc"), "p_holm"] == pytest.approx(
        ext.loc[("elastix_cnn", "dsc"), "p_value"])
    md = (tmp_path / "out" / "table_extended.md").read_text()
    assert "not tested" in md and "Shown without a test (bounds, ablations): identity" in md


def test_metrics_written_before_failures_were_recorded_still_load(metric_files, tmp_path):
    paths, frames = metric_files
    frames["identity"].drop(columns="reason").to_csv(paths[2], index=False)
    write_tables(paths, CONFIG, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "table1.csv").set_index("method")
    assert table.loc["identity", "n_failed"] == 0


def test_runtime_table_breaks_the_case_into_stages_and_prints_the_speed_ratio(metric_files,
                                                                              tmp_path):
    """One scope for all: the stages of every case add up to its `seconds_case`; the speed
    ratio is slow / fast on the pairs both timed, on the case and on the core scope."""
    paths, frames = metric_files
    out = tmp_path / "out"
    write_tables(paths, CONFIG, out)
    stages = pd.read_csv(out / "table_runtime.csv")
    for method, share in stages.groupby("method")["share_of_case"].sum().items():
        assert share == pytest.approx(1.0), method
    regsegnet = stages[stages["method"] == "regsegnet"].set_index("stage")
    assert list(regsegnet.index) == ["pair.read", "network", "write"]
    assert regsegnet.loc["network", "seconds_mean"] == pytest.approx(
        frames["regsegnet"]["seconds_core"].mean())
    ratio = pd.read_csv(out / "speed_ratio.csv").iloc[0]
    fast, slow = frames["regsegnet"], frames["elastix_cnn"]
    assert (ratio["fast"], ratio["slow"], ratio["n_pairs"]) == ("regsegnet", "elastix_cnn", 8)
    for scope in ("case", "core"):
        expected = slow[f"seconds_{scope}"].mean() / fast[f"seconds_{scope}"].mean()
        assert ratio[f"ratio_{scope}"] == pytest.approx(expected)
    table1 = (out / "table1.md").read_text()
    assert f"took {ratio['ratio_case']:.3g}× the time of RegSegNet per case" in table1
    runtime = (out / "table_runtime.md").read_text()
    assert "pair 1" in runtime and "network" in runtime and "Core (s)" in runtime
