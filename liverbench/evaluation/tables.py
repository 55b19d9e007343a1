"""Table 1 (as in the paper) and the extended table, from the per-method metric CSVs.

    python -m liverbench.evaluation.tables --metrics metrics/a.csv metrics/b.csv ... \\
        --settings '{"reference_method": "regsegnet", ...}' --experiment E --seed 2024 \\
        --out-dir DIR

writes ``table1.{csv,md,tex,html}``, ``table_extended.{csv,md,html}`` (`extended`),
``table_mask_source.{csv,md,html}`` (`mask_source`), ``table_runtime.{csv,md,html}`` and
``speed_ratio.csv`` (`runtime_table`) to DIR; the frame they share is `metric_frame`'s.

Which pairs enter which number (stated in every table's notes):
- a ``missing`` prediction enters nothing; it is counted in the ``missing`` column and named
  in a note, so a mean over fewer pairs never passes silently;
- an ``empty`` prediction enters the overlap metrics with its defined values (DSC 0, FNR 1,
  FPR 0, RVD −1) and is counted; surface distances and LSF do not exist for it;
- a ``failed`` pair (the method recorded that it gave up, with the reason) is scored as the
  empty mask it left, and counted in the ``missing`` column of Table 1 with a note;
- paired tests use every pair both methods were scored on (all but ``missing``): a failed or
  empty prediction keeps its DSC 0, and where a metric is undefined for it (surface
  distances) it takes the worst value of that metric over all methods and pairs (`penalised`),
  so it ranks last; dropping those pairs would favour the method that failed.

``--settings`` is the ``evaluation`` config section (``liverbench.evaluation.settings``, where
its defaults live): ``reference_method``, ``bootstrap_samples``, ``method_labels`` ({id:
display name}) and ``paper_table1`` (the paper's rows: a list of {method, dsc, fnr, fpr, msd,
runtime}, or {rows: [...], citation, label}; values are "0.92±0.02"-style strings, numbers,
[mean, std] or {mean, std}). ``write_tables`` takes the same keys plus ``seed`` (of the
bootstrap), ``experiment`` (shown in titles) and ``paper_citation``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd

from liverbench.cli import command
from liverbench.data.io import write_text
from liverbench.evaluation.evaluate import write_csv
from liverbench.evaluation.extended import extended_blocks, extended_values
from liverbench.evaluation.mask_source import mask_source_block, mask_source_values
from liverbench.evaluation.metric_frame import (
    CONVENTION_NOTE,
    TRE_NOTE,
    counts,
    label_of,
    load_metrics,
    notes_for_counts,
    present,
    scored,
)
from liverbench.evaluation.render import (
    DASH,
    Block,
    fmt_mean_std,
    fmt_seconds,
    to_html,
    to_latex,
    to_markdown,
)
from liverbench.evaluation.runtime_table import (
    runtime_block,
    speed_notes,
    speed_ratios,
    stage_values,
)
from liverbench.evaluation.settings import Settings
from liverbench.evaluation.statistics import (
    summarize,
)

DEFAULT_PAPER_LABEL = "Paper (Pham et al., MIDL 2024, H108, private)"
# Table 1's metrics as the paper prints them, then the registration error where the cohort
# has a true motion (the paper's data had none, so its rows show a dash there).
TABLE1_METRICS = ("dsc", "fnr", "fpr", "msd", "tre_mean_mm")
TABLE1_NAMES = {"dsc": "DSC", "fnr": "FNR", "fpr": "FPR", "msd": "MSD (mm)",
                "tre_mean_mm": "TRE (mm)"}
RUNTIME_HEADER = ("Core (s)", "Case (s)")
COUNT_HEADER = ("n", "missing", "empty")


# ----------------------------------------------------------------------------- numbers


def table1_values(frame: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Numeric Table 1: counts, mean and std of DSC/FNR/FPR/MSD (and TRE where the cohort
    has a truth) and of both runtimes."""
    rows = []
    n = counts(frame, methods)
    for method in methods:
        rows_m = scored(frame[frame["method"] == method])
        row: dict[str, Any] = {"method": method, **n.loc[method].to_dict()}
        for metric in present(TABLE1_METRICS, frame):
            s = summarize(rows_m[metric])
            row[f"{metric}_mean"], row[f"{metric}_std"] = s["mean"], s["std"]
        for column, key in (("seconds_core", "runtime_core"),
                            ("seconds_case", "runtime_case")):
            s = summarize(frame.loc[frame["method"] == method, column])
            row[f"{key}_mean"], row[f"{key}_std"] = s["mean"], s["std"]
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- formatting


def _number(text: Any) -> str:
    return f"{text:g}" if isinstance(text, (int, float)) else str(text)


def paper_cell(value: Any) -> tuple[str, float, float]:
    """A paper value as printed, and its mean and std as numbers where they can be read."""
    if value is None:
        return DASH, math.nan, math.nan
    if isinstance(value, dict):
        mean, std = value.get("mean"), value.get("std")
        text = _number(mean) + (f" ± {_number(std)}" if std is not None else "")
    elif isinstance(value, (list, tuple)):
        mean, std = value[0], value[1] if len(value) > 1 else None
        text = _number(mean) + (f" ± {_number(std)}" if std is not None else "")
    else:
        text = re.sub(r"\s*(±|\+/-|\+-)\s*", " ± ", str(value).strip()) if isinstance(
            value, str) else _number(value)
    numbers = [float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]
    mean = numbers[0] if numbers else math.nan
    std = numbers[1] if len(numbers) > 1 and "±" in text else math.nan
    return text, mean, std


def paper_rows(config: dict[str, Any]) -> tuple[list[dict[str, Any]], str, str]:
    """(rows, block title, citation) of the paper's Table 1 from the config."""
    spec = config.get("paper_table1")
    citation = str(config.get("paper_citation") or "")
    label = DEFAULT_PAPER_LABEL
    if isinstance(spec, dict):
        citation = str(spec.get("citation") or citation)
        label = str(spec.get("label") or label)
        spec = spec.get("rows")
    return list(spec or []), label, citation


# ----------------------------------------------------------------------------- table 1


def _mask_note(methods: Sequence[str], config: dict[str, Any],
               labels: dict[str, str]) -> list[str]:
    """Which CECT liver each registration row carried (the mask source, a design factor)."""
    sources = config.get("mask_sources") or {}
    by_mask: dict[str, list[str]] = {}
    for method in methods:
        if method in sources:
            by_mask.setdefault(sources[method]["mask"], []).append(label_of(method, labels))
    names = {"annotation": "the annotated CECT liver", "nnunet": "nnU-Net's CECT segmentation"}
    if not by_mask:
        return []
    return ["CECT liver carried: " + "; ".join(
        f"{names.get(mask, mask)} by {', '.join(rows)}" for mask, rows in by_mask.items()) + "."]


def table1(
    frame: pd.DataFrame, methods: Sequence[str], config: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, list[Block]]:
    """Table 1: the CSV frame of our rows, the CSV frame of the paper's printed rows (kept
    apart: a printed "~122 s" never shares a column with a measured runtime) and the
    display blocks (ours first, then the paper's, clearly labelled)."""
    labels = config["method_labels"]
    values = table1_values(frame, methods)
    metrics = present(TABLE1_METRICS, frame)
    header = ["Method", *(TABLE1_NAMES[m] for m in metrics), *RUNTIME_HEADER, *COUNT_HEADER]
    shown = header[1:len(metrics) + 3]  # the formatted cells: metrics and runtimes
    source = f"this benchmark ({config['experiment']})" if config.get("experiment") else (
        "this benchmark")
    display_rows, csv_rows = [], []
    for _, v in values.iterrows():
        cells = [fmt_mean_std(v[f"{m}_mean"], v[f"{m}_std"]) for m in metrics]
        cells += [fmt_seconds(v["runtime_core_mean"], v["runtime_core_std"]),
                  fmt_seconds(v["runtime_case_mean"], v["runtime_case_std"])]
        name = label_of(v["method"], labels)
        display_rows.append([name, *cells, int(v["n_pairs"]),
                             int(v["n_missing"] + v["n_failed"]), int(v["n_empty"])])
        csv_rows.append({"source": source, "label": name, **dict(zip(shown, cells)),
                         **v.to_dict()})
    ours = Block(
        title=f"This benchmark ({config['experiment']})" if config.get("experiment")
        else "This benchmark",
        frame=pd.DataFrame(display_rows, columns=header),
        notes=[CONVENTION_NOTE, *([TRE_NOTE] if "tre_mean_mm" in metrics else []),
               *_mask_note(methods, config, labels),
               *speed_notes(speed_ratios(frame), labels),
               *notes_for_counts(counts(frame, methods), labels, frame)],
    )
    blocks = [ours]
    paper_csv: list[dict[str, Any]] = []
    rows, paper_label, citation = paper_rows(config)
    if rows:
        paper_display = []
        for spec in rows:
            cells = {key: paper_cell(spec.get(key)) for key in (*metrics, "runtime")}
            printed = [cells[key][0] for key in (*metrics, "runtime")]
            paper_display.append([str(spec.get("method", "?")), *printed, DASH,
                                  spec.get("n", DASH), DASH, DASH])
            record: dict[str, Any] = {"source": "paper", "method": spec.get("method"),
                                      "citation": citation, "n_test_patients": spec.get("n")}
            record.update(zip(shown, printed))
            for key in metrics:
                record[f"{key}_mean"], record[f"{key}_std"] = cells[key][1], cells[key][2]
            record["runtime_s"] = cells["runtime"][1]
            paper_csv.append(record)
        notes = ["Numbers as printed in the paper, on its private H108 data (20 test "
                 "patients); not the same cases as the rows above, so compare rankings and "
                 "magnitudes, not values."]
        if citation:
            notes.append(f"Source: {citation}")
        blocks.append(Block(paper_label, pd.DataFrame(paper_display, columns=header), notes))
    else:
        ours.notes.append("The paper's rows are not shown: no paper_table1 in the config.")
    table = pd.DataFrame(csv_rows)
    count_columns = ["n_pairs", "n_ok", "n_empty", "n_failed", "n_missing"]
    table[count_columns] = table[count_columns].astype("Int64")
    first = ["source", "method", "label", *shown, *count_columns]
    paper = pd.DataFrame(paper_csv, columns=["source", "method", "citation", "n_test_patients",
                                             *shown, *(f"{k}_{s}" for k in metrics
                                                       for s in ("mean", "std")), "runtime_s"])
    return table[first + [c for c in table.columns if c not in first]], paper, blocks


# ----------------------------------------------------------------------------- driver


def resolve_reference(config: dict[str, Any], methods: Sequence[str]) -> str | None:
    wanted = config["reference_method"]
    return wanted if wanted in methods else None


def table_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with every evaluation setting checked and filled (their defaults live in
    `liverbench.evaluation.settings`); other keys (seed, experiment) pass through."""
    names = {field.name for field in fields(Settings)}
    settings = Settings.from_mapping({k: v for k, v in config.items() if k in names},
                                     section="evaluation")
    return {**config, **settings.to_dict()}


def write_tables(
    metric_paths: Sequence[str | os.PathLike], config: dict[str, Any], out_dir: str | os.PathLike
) -> dict[str, Path]:
    """Build and write every table file; returns {name: path}."""
    out = Path(out_dir)
    config = table_config(config)
    frame, methods = load_metrics(metric_paths)
    reference = resolve_reference(config, methods)
    seed = int(config.get("seed", 0))
    n_boot = config["bootstrap_samples"]

    t1_csv, paper_csv, t1_blocks = table1(frame, methods, config)
    heading = "Table 1: liver segmentation on nCECT"
    paths = {f"table1.{ext}": out / f"table1.{ext}" for ext in ("csv", "md", "tex", "html")}
    paths["table1_paper.csv"] = out / "table1_paper.csv"
    write_csv(t1_csv, paths["table1.csv"])
    write_csv(paper_csv, paths["table1_paper.csv"])
    write_text(to_markdown(t1_blocks, heading) + "\n", paths["table1.md"])
    write_text(to_latex(t1_blocks), paths["table1.tex"])
    write_text(to_html(t1_blocks, heading), paths["table1.html"])

    ext_values = extended_values(frame, methods, reference, seed, n_boot,
                                 config["tested_methods"])
    ext_blocks = extended_blocks(ext_values, methods, config, frame, reference)
    heading = "Extended table: all metrics, robust summaries and paired tests"
    for ext in ("csv", "md", "html"):
        paths[f"table_extended.{ext}"] = out / f"table_extended.{ext}"
    write_csv(ext_values, paths["table_extended.csv"])
    write_text(to_markdown(ext_blocks, heading) + "\n", paths["table_extended.md"])
    write_text(to_html(ext_blocks, heading), paths["table_extended.html"])

    given = config.get("mask_sources") or {}
    sources = {m: given[m] for m in methods if m in given}  # in table order
    values = mask_source_values(frame, sources)
    block = mask_source_block(values)
    heading = "Registration × CECT mask source"
    for ext in ("csv", "md", "html"):
        paths[f"table_mask_source.{ext}"] = out / f"table_mask_source.{ext}"
    write_csv(values, paths["table_mask_source.csv"])
    write_text(to_markdown([block], heading) + "\n", paths["table_mask_source.md"])
    write_text(to_html([block], heading), paths["table_mask_source.html"])

    stages, ratios = stage_values(frame, methods), speed_ratios(frame)
    block = runtime_block(frame, methods, stages, ratios, config["method_labels"])
    heading = "Runtime per case: core, case and stages"
    for ext in ("csv", "md", "html"):
        paths[f"table_runtime.{ext}"] = out / f"table_runtime.{ext}"
    paths["speed_ratio.csv"] = out / "speed_ratio.csv"
    write_csv(stages, paths["table_runtime.csv"])
    write_csv(ratios, paths["speed_ratio.csv"])
    write_text(to_markdown([block], heading) + "\n", paths["table_runtime.md"])
    write_text(to_html([block], heading), paths["table_runtime.html"])
    return paths


def run(args: argparse.Namespace) -> None:
    settings = Settings.from_text(args.settings, section="evaluation")
    config = {**settings.to_dict(), "experiment": args.experiment, "seed": args.seed,
              "mask_sources": json.loads(args.mask_sources) if args.mask_sources else {}}
    paths = write_tables(args.metrics, config, args.out_dir)
    print("\n".join(str(p) for p in paths.values()))


DESCRIPTION = "Table 1 and the extended table from per-method metric CSVs."
PROG = "python -m liverbench.evaluation.tables"


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add this command's arguments and handler (also a subcommand of liverbench.evaluation)."""
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics/{method}.csv, "
                        "in table order")
    parser.add_argument("--settings", default="{}",
                        help="the evaluation config section: JSON, or a JSON/YAML file")
    parser.add_argument("--experiment", default="", help="experiment name (table titles)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--mask-sources", default="",
                        help='JSON {method: {"registration": name, "mask": annotation|nnunet}}: '
                        "the rows of the registration x mask source table")
    parser.add_argument("--out-dir", required=True)
    parser.set_defaults(func=run)
    return parser


main = command(PROG, DESCRIPTION, configure)


if __name__ == "__main__":
    sys.exit(main())
