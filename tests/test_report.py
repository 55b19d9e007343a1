"""The Snakemake HTML report: captions exist and render; after the smoke run the report
holds Table 1 with every configured method; a headless Chromium renders it to a non-blank
screenshot."""

from __future__ import annotations

import base64
import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import matplotlib.image as mpimg
import pytest
from conftest import PHI, ROOT, SMOKE_CONFIG, run_snakemake
from docutils.core import publish_parts

from liverbench.config import load

RULES = ROOT / "workflow" / "rules"
REPORT = ROOT / "workflow" / "report"
SMOKE = load(ROOT / "config.yaml", {"scale": "smoke", "experiment": "smoke"})


def captions() -> list[Path]:
    found = []
    for path in RULES.glob("*.smk"):
        for caption in re.findall(r'caption="([^"]+)"', path.read_text()):
            found.append((path.parent / caption).resolve())
    return found


def render_rst(path: Path, **context) -> str:
    """Render like Snakemake does: Jinja2 first, then docutils; fail on rst errors."""
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as Snakemake's
    text = environment.from_string(path.read_text()).render(**context)
    parts = publish_parts(text, writer="html",
                          settings_overrides={"halt_level": 2, "report_level": 2})
    return parts["html_body"]


def test_every_caption_exists_and_renders():
    files = captions()
    assert len(files) >= 8
    wildcards = {"pair": "P001__P001", "method": "regsegnet"}
    for path in files:
        assert path.is_file(), f"caption {path} referenced by a rule does not exist"
        html = render_rst(path, snakemake={"wildcards": wildcards, "config": SMOKE})
        assert len(html) > 100, path


def test_workflow_description_renders_the_config():
    html = render_rst(REPORT / "workflow.rst", snakemake={"config": SMOKE})
    assert "smoke" in html and "|GT ∪ P|" in html
    assert "How to cite." in html and "CITATION.cff" in html and "RegSegNet: A Joint" in html
    for method in SMOKE["methods"]:
        assert method in html
    manifest = {**SMOKE, "cohort": {**SMOKE["cohort"], "source": "manifest",
                                    "manifest": "my.csv"}, "regsegnet": {"moving_mask": "x"}}
    html = render_rst(REPORT / "workflow.rst", snakemake={"config": manifest})
    assert "my.csv" in html and "phantom" not in html


def embedded_documents(report: str) -> str:
    """The text of every base64-embedded HTML/text result inside a Snakemake report."""
    texts = []
    for payload in re.findall(r"data:text/(?:html|plain|csv)[^,]*;base64,([A-Za-z0-9+/=]+)",
                              report):
        texts.append(base64.b64decode(payload).decode("utf-8", errors="replace"))
    return "\n".join(texts)


@pytest.fixture(scope="module")
def smoke_report(smoke_run: Path) -> Path:
    workdir = smoke_run.parent.parent
    report = smoke_run / "report.html"
    result = run_snakemake(workdir, *SMOKE_CONFIG,
                           "--report", str(report))
    assert result.returncode == 0, result.stderr[-4000:]
    return report


def test_report_contains_table1_with_every_method(smoke_report: Path, smoke_run: Path):
    text = smoke_report.read_text()
    assert len(text) > 50_000
    embedded = embedded_documents(text)
    assert "Table 1" in embedded, "table1.html is not embedded in the report"
    labels = SMOKE["evaluation"]["method_labels"]  # filled for every selected method
    for method in SMOKE["methods"]:
        assert labels[method] in embedded, method
    table1 = (smoke_run / "table1.md").read_text()
    for method in SMOKE["methods"]:
        assert labels[method] in table1
    for name in ("metrics_boxplot.png", "runtime.png", "accuracy_runtime.png"):
        assert (smoke_run / "figures" / name).stat().st_size > 1000


def test_report_has_a_section_per_external_cohort(smoke_report: Path):
    """The derived test cohort of the smoke run has its own category: its Table 1 and its
    overlays, beside the main ones."""
    text = smoke_report.read_text()
    assert "External cohort: derived" in text
    assert text.count("liver_0__liver_0") >= 1, "the external cohort's overlays are missing"


def test_no_patient_identifier_reaches_an_output_a_log_or_the_report(smoke_report: Path):
    """The smoke run's manifest cohort gives its CECT as a DICOM series whose headers carry the
    patient's name, ID, birth date and accession number (conftest.PHI): none of them is in any
    file the run wrote (images, records, tables, figures, logs, Snakemake's own records) or in
    the report and the documents it embeds (issue #15)."""
    workdir = smoke_report.parent.parent.parent
    source = workdir / "external_source"
    dicom = next(source.rglob("cect_dicom"))
    assert PHI["0010|0010"].encode() in next(dicom.iterdir()).read_bytes()
    written = [path for path in workdir.rglob("*")
               if path.is_file() and source not in path.parents]
    assert any("minimal" in str(path) for path in written), "the manifest cohort did not run"
    assert len(written) > 500
    for path in written:
        content = path.read_bytes()
        if content[:2] == b"\x1f\x8b":  # gzip (a .nii.gz name alone does not make one)
            content = gzip.decompress(content)
        for value in PHI.values():
            assert value.encode() not in content, f"{value} in {path}"
    embedded = embedded_documents(smoke_report.read_text())
    assert not [value for value in PHI.values() if value in embedded]


def chromium() -> str | None:
    """Chromium's path, installing Debian's package if possible (root with apt-get)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    for command in (["apt-get", "install", "-y", "-q", "chromium"],
                    ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(command, capture_output=True, timeout=900, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode == 0 and shutil.which("chromium"):
            return shutil.which("chromium")
    return shutil.which("chromium")


def test_report_renders_in_headless_chromium(smoke_report: Path, tmp_path: Path):
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed and could not be installed with apt-get")
    screenshot = tmp_path / "report.png"
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
               "--virtual-time-budget=15000", f"--user-data-dir={tmp_path / 'profile'}",
               f"--screenshot={screenshot}", smoke_report.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert screenshot.is_file(), f"no screenshot: {result.stderr[-2000:]}"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (900, 1280)
    assert pixels.std() > 0.02, "the screenshot is blank"
