"""The speed benchmark's table for the report: `benchmarks/speed.py` writes
`results/<experiment>/speed.csv` (RegSegNet against Elastix + CNN on the same pairs, each
method alone on the machine); this renders it as `speed.html` and `speed.md`.

    python -m liverbench.evaluation.speed_table --csv results/demo/speed.csv \\
        --html results/demo/speed.html --md results/demo/speed.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from liverbench.cli import run_cli
from liverbench.data.io import write_text
from liverbench.evaluation.render import Block, fmt_seconds, to_html, to_markdown

HEADING = "Speed benchmark: RegSegNet against Elastix + CNN"
NOTE = (
    "benchmarks/speed.py: the experiment's first test pairs, each method's commands run alone "
    "on the machine (medians over the pairs). Case: original images read to the mask written; "
    "core: network or registration. Ratios are Elastix + CNN's time over the row's. At 128³ "
    "RegSegNet has random weights at the paper's channels; Elastix + CNN works on the "
    "original images, so its figures are the 64³ run's. Inference: RegSegNet's test-time "
    "backend (regsegnet.inference); compile's one-off compilation is not in a pair's time."
)


def speed_block(frame: pd.DataFrame) -> Block:
    if "inference" not in frame:
        frame = frame.assign(inference="")
    rows = [[row.method, row.inference if isinstance(row.inference, str) else "", row.shape,
             row.pairs, fmt_seconds(row.seconds_case, float("nan")),
             fmt_seconds(row.seconds_core, float("nan")),
             f"{row.elastix_cnn_over_this_case:.1f}×", f"{row.elastix_cnn_over_this_core:.1f}×",
             int(row.peak_memory_mb)]
            for row in frame.itertuples()]
    table = pd.DataFrame(rows, columns=["Method", "Inference", "Grid", "Pairs", "Case (s)",
                                        "Core (s)",
                                        "E+C / case", "E+C / core", "Peak MB"])
    return Block(f"Median per case, {int(frame['threads'].iloc[0])} threads", table, [NOTE])


PROG = "python -m liverbench.evaluation.speed_table"


def render(args: argparse.Namespace) -> None:
    block = speed_block(pd.read_csv(args.csv))
    write_text(to_html([block], HEADING), args.html)
    write_text(to_markdown([block], HEADING), args.md)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--html", type=Path, required=True)
    parser.add_argument("--md", type=Path, required=True)
    parser.set_defaults(func=render)
    return run_cli(PROG, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
