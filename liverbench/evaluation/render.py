"""Rendering of the tables: titled blocks of cells with notes, as Markdown, HTML and a LaTeX
(booktabs) fragment, and the number formats every cell uses (one place, so Table 1 and the
extended table print a value the same way)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DASH = "–"


@dataclass
class Block:
    """One titled table with its notes, rendered the same way into md, html and tex."""

    title: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def fmt(value: float, digits: int = 2) -> str:
    return DASH if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def fmt_mean_std(mean: float, std: float, digits: int = 2) -> str:
    if not np.isfinite(mean):
        return DASH
    return fmt(mean, digits) if not np.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_seconds(mean: float, std: float) -> str:
    """Runtimes span 1 ms to minutes: 3 significant digits rather than 2 decimals."""
    if not np.isfinite(mean):
        return DASH
    return f"{mean:.3g}" if not np.isfinite(std) else f"{mean:.3g} ± {std:.3g}"


def fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"



def to_markdown(blocks: Sequence[Block], heading: str) -> str:
    parts = [f"# {heading}", ""]
    for block in blocks:
        table = block.frame.to_markdown(index=False, disable_numparse=True)
        parts += [f"## {block.title}", "", table, ""]
        parts += [f"- {note}" for note in block.notes]
        if block.notes:
            parts.append("")
    return "\n".join(parts)


HTML_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;}table{border-collapse:collapse;margin:.5em 0;}"
    "th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right;}"
    "th:first-child,td:first-child{text-align:left;}th{background:#eee;}"
    "section.paper{color:#444;background:#f7f7f2;padding:.2em 1em;border-left:4px solid #c90;}"
)


def to_html(blocks: Sequence[Block], heading: str) -> str:
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
             f"<title>{html.escape(heading)}</title><style>{HTML_STYLE}</style></head><body>",
             f"<h1>{html.escape(heading)}</h1>"]
    for block in blocks:
        kind = "paper" if block.title.lower().startswith("paper") else "ours"
        parts += [f'<section class="{kind}">', f"<h2>{html.escape(block.title)}</h2>",
                  block.frame.to_html(index=False, escape=True, border=0)]
        if block.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in block.notes)
                         + "</ul>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "\\": r"\textbackslash{}", "±": r"$\pm$", "–": "--", "∪": r"$\cup$"}


def latex_escape(text: Any) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(blocks: Sequence[Block]) -> str:
    """A booktabs tabular fragment; each block starts with a spanning, italic title row."""
    columns = list(blocks[0].frame.columns)
    width = len(columns)
    lines = [
        "% Table 1 of regsegbench; needs \\usepackage{booktabs}",
        f"\\begin{{tabular}}{{l{'r' * (width - 1)}}}",
        "\\toprule",
        " & ".join(latex_escape(c) for c in columns) + r" \\",
    ]
    for block in blocks:
        if list(block.frame.columns) != columns:
            raise ValueError("all blocks of a LaTeX table need the same columns")
        lines += ["\\midrule",
                  f"\\multicolumn{{{width}}}{{l}}{{\\textit{{{latex_escape(block.title)}}}}} \\\\"]
        for row in block.frame.itertuples(index=False):
            lines.append(" & ".join(latex_escape(v) for v in row) + r" \\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)
