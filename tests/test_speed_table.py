"""The speed benchmark's CSV (benchmarks/speed.py) rendered for the report."""

from pathlib import Path

import pandas as pd

from liverbench.evaluation.speed_table import main


def test_speed_csv_renders_every_row_and_ratio(tmp_path: Path):
    rows = [
        {"method": "regsegnet_c3", "shape": "64^3", "pairs": 5, "failed": 0,
         "seconds_case": 0.61, "seconds_core": 0.09, "peak_memory_mb": 900, "threads": 2,
         "elastix_cnn_over_this_case": 78.7, "elastix_cnn_over_this_core": 480.0},
        {"method": "elastix_cnn", "shape": "64^3", "pairs": 5, "failed": 0,
         "seconds_case": 48.0, "seconds_core": 43.2, "peak_memory_mb": 2100, "threads": 2,
         "elastix_cnn_over_this_case": 1.0, "elastix_cnn_over_this_core": 1.0},
    ]
    csv = tmp_path / "speed.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    html, md = tmp_path / "speed.html", tmp_path / "speed.md"
    assert main(["--csv", str(csv), "--html", str(html), "--md", str(md)]) == 0
    text = md.read_text()
    assert "regsegnet_c3" in text and "elastix_cnn" in text
    assert "78.7×" in text and "480.0×" in text and "0.61" in text
    assert "<table" in html.read_text()
