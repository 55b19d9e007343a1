"""The bad-input catalogue (docs/bad-inputs.md): each entry is a real call on a bad input,
checked to fail with an error that names the file or key and the problem; the document is
rendered from these very messages and must match them.

    REGSEGBENCH_WRITE_CATALOGUE=1 ./run test tests/test_bad_inputs.py   # rewrite the document
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from conftest import ROOT, tiny_ct, write_case, write_dicom_series
from test_dicom_masks import (
    LIVER_CENTRE,
    LIVER_RADII,
    liver_contours,
    lung_contours,
    ring,
    seg_truth,
    write_ct_series,
    write_rtstruct,
    write_seg,
)

from baselines.elastix_cnn import parameter_files as elastix_files
from baselines.elastix_cnn import registration as elastix_registration
from baselines.elastix_cnn.settings import Settings as ElastixSettings
from liverbench.config import deep_merge, resolve
from liverbench.data.adapters import read_manifest
from liverbench.data.dicom_masks import read_mask_source
from liverbench.data.io import read_image, read_mask, write_image
from liverbench.data.splits import plan_splits
from liverbench.errors import InputError
from liverbench.settings import SettingsError
from regsegnet.settings import Settings

CATALOGUE = ROOT / "docs" / "bad-inputs.md"


@dataclass(frozen=True)
class Case:
    area: str
    given: str  # the bad input, in words
    make: Callable[[Path], object]  # does the call that must fail, on files under the folder
    expected: str  # a regular expression the message must match


def _config(**override) -> Callable[[Path], object]:
    raw = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    return lambda _: resolve(deep_merge(raw, override))


def _manifest(rows: list[dict], raw: bytes | None = None) -> Callable[[Path], object]:
    def make(folder: Path) -> object:
        write_case(folder / "c")
        path = folder / "manifest.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        if raw is not None:
            path.write_bytes(raw)
        return read_manifest(path)
    return make


ROW = {"patient_id": "A", "cect": "c/cect.nii", "cect_liver": "c/cect_liver.nii",
       "ncect": "c/ncect.nii", "ncect_liver": "c/ncect_liver.nii"}


def _image_file(name: str, write: Callable[[Path], None]) -> Callable[[Path], object]:
    def make(folder: Path) -> object:
        write(folder / name)
        return read_image(folder / name)
    return make


def _cut(path: Path) -> None:
    voxels = np.random.default_rng(0).integers(0, 2, (20, 30, 40), dtype=np.uint8)
    write_image(sitk.GetImageFromArray(voxels), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _huge_header(path: Path) -> None:
    write_image(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.int16)), path)
    header = bytearray(path.read_bytes()[:352])
    header[42:48] = np.array([1024, 1024, 600], "<i2").tobytes()
    path.write_bytes(bytes(header))


def _series_without_a_slice(folder: Path) -> Path:
    image, _ = tiny_ct(shape=(20, 24, 24), spacing_xyz=(8.0, 8.0, 10.0))
    write_dicom_series(image, folder / "series")
    (folder / "series" / "slice007.dcm").unlink()
    return folder / "series"


def _mask(values: np.ndarray, reference_shape=None) -> Callable[[Path], object]:
    def make(folder: Path) -> object:
        image, _ = tiny_ct(shape=reference_shape or values.shape)
        mask = sitk.GetImageFromArray(values)
        if reference_shape is None:
            mask.CopyInformation(image)
        write_image(mask, folder / "liver.nii")
        return read_mask(folder / "liver.nii", image, folder / "ct.nii")
    return make


ELASTIX_MAP = """\
(Registration "MultiResolutionRegistration")
(Transform "EulerTransform")
(Metric "AdvancedMattesMutualInformation")
(Optimizer "AdaptiveStochasticGradientDescent")
(MaximumNumberOfIterations 5)
"""


def _elastix_file(line: str) -> Callable[[Path], object]:
    """Elastix + CNN's settings naming one parameter file: ELASTIX_MAP with `line` added."""
    def make(folder: Path) -> object:
        (folder / "rigid.txt").write_text(ELASTIX_MAP + line + "\n", encoding="utf-8")
        return ElastixSettings.from_mapping({"parameter_files": [str(folder / "rigid.txt")]},
                                            "elastix_cnn")
    return make


def _elastix_run(text: str) -> Callable[[Path], object]:
    """elastix itself, on a tiny image pair, with one user parameter file holding `text`."""
    def make(folder: Path) -> object:
        (folder / "rigid.txt").write_text(text, encoding="utf-8")
        user = elastix_files.load([str(folder / "rigid.txt")], 1)
        image, mask = tiny_ct()
        return elastix_registration.register(image, image, mask, mask, user.maps,
                                             log_dir=folder / "log", name="P1__P1",
                                             parameter_files=user.files)
    return make


def _structure(label: str | None, write: Callable[[Path], Path], **other_ct
               ) -> Callable[[Path], object]:
    """A mask named in a DICOM file (`write` makes it beside a tiny DICOM CT, folder/ct), read
    onto that CT, or onto another one (`other_ct`: its frame of reference or geometry)."""
    def make(folder: Path) -> object:
        image, ct = write_ct_series(folder / "ct"), folder / "ct"
        structure = write(folder)
        if other_ct:
            image, ct = write_ct_series(folder / "other", **other_ct), folder / "other"
        return read_mask_source(structure, label, image, ct)
    return make


def _rtstruct(**references) -> Callable[[Path], Path]:
    return lambda folder: write_rtstruct(
        folder / "rt.dcm", {"Liver": liver_contours(), "Lungs": lung_contours()}, **references)


def _seg(folder: Path) -> Path:
    return write_seg(folder / "seg.dcm", folder / "ct", seg_truth())


def _nifti_liver(folder: Path) -> Path:
    write_image(tiny_ct()[1], folder / "liver.nii")
    return folder / "liver.nii"


CASES = [
    Case("image", "an image file that does not exist",
         lambda folder: read_image(folder / "cect.nii.gz"), r"cect\.nii\.gz: file not found"),
    Case("image", "a file that is not an image",
         _image_file("cect.nii.gz", lambda p: p.write_bytes(b"not an image")),
         r"cect\.nii\.gz: cannot be read as an image"),
    Case("image", "a NIfTI cut short (a broken copy, a full disk)",
         _image_file("cect.nii", _cut), r"cect\.nii: file is cut short: \d+ bytes of the \d+"),
    Case("image", "a 2-D image where a volume is expected",
         _image_file("slice.nii", lambda p: sitk.WriteImage(sitk.Image([8, 8], sitk.sitkInt16),
                                                            str(p))),
         r"slice\.nii: expected a 3-D volume, got 2-D"),
    Case("image", "a NIfTI header declaring far more voxels than the file holds",
         _image_file("ct.nii", lambda p: _huge_header(p)),
         r"ct\.nii: file is cut short: 352 bytes of the 1258291552"),
    Case("image", "a DICOM series with a slice missing",
         lambda folder: read_image(_series_without_a_slice(folder)),
         r"series: DICOM slices are not evenly spaced: 20\.00 mm between slice006\.dcm and "
         r"slice008\.dcm"),
    Case("mask", "a mask with labels other than 0/1 (or 0/255)",
         _mask(np.full((20, 40, 40), 2, np.uint8)), r"liver\.nii: mask is not binary \(values 2\)"),
    Case("mask", "an empty mask", _mask(np.zeros((20, 40, 40), np.uint8)),
         r"liver\.nii: mask is empty"),
    Case("mask", "a mask on another grid than its CT",
         _mask(np.ones((10, 20, 20), np.uint8), reference_shape=(20, 40, 40)),
         r"liver\.nii: mask geometry \(.*\) differs from the image of .*ct\.nii"),
    Case("DICOM mask", "an RTSTRUCT without the ROI a mask column names (`rt.dcm::Spleen`)",
         _structure("Spleen", _rtstruct()),
         r"rt\.dcm: no ROI named 'Spleen' in the RTSTRUCT \(present: \['Liver', 'Lungs'\]\)"),
    Case("DICOM mask", "a DICOM-SEG without the segment a mask column names",
         _structure("Spleen", _seg),
         r"seg\.dcm: no segment named 'Spleen' in the DICOM-SEG \(present: \['Liver', "
         r"'Lungs'\]\)"),
    Case("DICOM mask", "an RTSTRUCT of several ROIs without `::ROI`",
         _structure(None, _rtstruct()),
         r"rt\.dcm: the RTSTRUCT holds 2 ROIs; name one as rt\.dcm::NAME"),
    Case("DICOM mask", "an RTSTRUCT ROI without a contour",
         _structure("Liver", lambda f: write_rtstruct(f / "rt.dcm", {"Liver": []})),
         r"rt\.dcm::Liver: mask is empty"),
    Case("DICOM mask", "`::Liver` on an image mask (not DICOM)",
         _structure("Liver", _nifti_liver),
         r"liver\.nii: '::Liver' names an ROI or segment, but the file is not DICOM; only an "
         r"RTSTRUCT or a DICOM-SEG holds them"),
    Case("DICOM mask", "`::Liver` on a DICOM file that is neither RTSTRUCT nor SEG",
         _structure("Liver", lambda f: f / "ct" / "slice000.dcm"),
         r"slice000\.dcm: '::Liver' names an ROI or segment, but the file is a DICOM CT "
         r"object; only an RTSTRUCT or a DICOM-SEG holds them"),
    Case("DICOM mask", "an RTSTRUCT in another frame of reference than its CT",
         _structure("Liver", _rtstruct(frame_uid="1.2.3.4")),
         r"rt\.dcm: the RTSTRUCT refers to frame of reference \['1\.2\.3\.4'\], but its CT "
         r"is in"),
    Case("DICOM mask", "an RTSTRUCT referring to another series than its CT",
         _structure("Liver", _rtstruct(series_uid="1.2.3.5")),
         r"rt\.dcm: the RTSTRUCT refers to series \['1\.2\.3\.5'\], but its CT is series"),
    Case("DICOM mask", "an RTSTRUCT contour between two slices of its CT",
         _structure("Liver", lambda f: write_rtstruct(
             f / "rt.dcm", {"Liver": [ring(LIVER_CENTRE, LIVER_RADII, -95.0)]})),
         r"rt\.dcm: a contour of Liver at z = -95\.0 mm is not on a slice of its CT"),
    Case("DICOM mask", "a DICOM-SEG of another scan (frame of reference)",
         _structure("Liver", _seg, frame_uid="1.2.3.6"),
         r"seg\.dcm: the DICOM-SEG refers to frame of reference \['1\.2\.826.*'\], but its CT "
         r"is in 1\.2\.3\.6"),
    Case("DICOM mask", "a DICOM-SEG on other voxels than its CT",
         _structure("Liver", _seg, spacing_xyz=(4.0, 4.0, 10.0)),
         r"seg\.dcm: the segment's voxels are not the CT's"),
    Case("DICOM mask", "a DICOM-SEG reaching beyond its CT",
         _structure("Liver", _seg, origin_xyz=(-160.0, -160.0, -40.0)),
         r"seg\.dcm: segment Liver reaches beyond its CT \(\d+ of its \d+ voxels outside\)"),
    Case("manifest", "a manifest without a required column",
         _manifest([{k: v for k, v in ROW.items() if k != "ncect_liver"}]),
         r"manifest\.csv: missing column\(s\) \['ncect_liver'\]"),
    Case("manifest", "a manifest row pointing to a missing file",
         _manifest([{**ROW, "ncect": "c/missing.nii"}]),
         r"manifest\.csv, line 2: column 'ncect' points to .*missing\.nii"),
    Case("manifest", "a patient id with shell characters, spaces or a trailing '_'",
         _manifest([{**ROW, "patient_id": "H001$(touch x)"}]),
         r"manifest\.csv, line 2: patient_id 'H001\$\(touch x\)' is not a safe id: letters"),
    Case("manifest", "two ids that differ only by letter case",
         _manifest([ROW, {**ROW, "patient_id": "a"}]),
         r"duplicate patient_id 'a' \(same as 'A' but for letter case\)"),
    Case("manifest", "a manifest saved in Latin-1 (not UTF-8)",
         _manifest([ROW], raw="patient_id,cect\nÄ1,c\n".encode("latin-1")),
         r"manifest\.csv: not UTF-8 text \(byte \d+\); save the table as UTF-8 CSV"),
    Case("manifest", "a mask cell ending in `::` (no ROI or segment name)",
         _manifest([{**ROW, "cect_liver": "c/cect_liver.nii::"}]),
         r"manifest\.csv, line 2: column 'cect_liver': 'c/cect_liver\.nii::': expected "
         r"PATH::LABEL"),
    Case("manifest", "`::label` in a column that is not a mask",
         _manifest([{**ROW, "ncect": "c/ncect.nii::CT"}]),
         r"manifest\.csv, line 2: column 'ncect': 'c/ncect\.nii::CT': '::' names a structure "
         r"in an RTSTRUCT or DICOM-SEG file, which only the mask columns"),
    Case("cohort", "a split column that leaves no test patient",
         lambda _: plan_splits(["A", "B"], [35, 5, 20], 0, 1, {"A": "train", "B": "val"}),
         r"no test patients among 2: the manifest's split column gives only \['train', 'val'\]"),
    Case("config", "a misspelt key", _config(cohort={"patiens": 3}),
         r"'patiens' was unexpected"),
    Case("config", "a reversed or empty HU window", _config(preprocess={"window": [240, -160]}),
         r"key 'preprocess\.window': \[240, -160\] must be \[low, high\] HU with low < high"),
    Case("config", "an experiment name that is a path", _config(experiment=".."),
         r"key 'experiment': '\.\.' does not match"),
    Case("config", "a scale no `scales:` block defines", _config(scale="huge"),
         r"key 'scale': no block 'huge' under 'scales'"),
    Case("config", "an unknown RegSegNet inference backend",
         lambda _: Settings.from_mapping({"inference": "tensorrt"}, "regsegnet"),
         r"regsegnet\.inference: must be one of \(.*\), got 'tensorrt'"),
    Case("elastix", "a parameter file (`elastix_cnn.parameter_files`) that does not exist",
         lambda folder: ElastixSettings.from_mapping(
             {"parameter_files": [str(folder / "rigid.txt")]}, "elastix_cnn"),
         r"elastix_cnn\.parameter_files\[0\]: rigid\.txt: file not found"),
    Case("elastix", "a parameter-file entry without its closing parenthesis",
         _elastix_file('(ImageSampler "Random"'),
         r"elastix_cnn\.parameter_files\[0\]: rigid\.txt:6: no closing parenthesis"),
    Case("elastix", "a parameter-file line that is neither a (Key value ...) entry nor a comment",
         _elastix_file("ImageSampler Random"),
         r"rigid\.txt:6: not a \(Key value \.\.\.\) entry or a // comment"),
    Case("elastix", "a parameter-file entry without a value", _elastix_file("(ImageSampler)"),
         r"rigid\.txt:6: needs a parameter name and at least one value"),
    Case("elastix", "a parameter-file entry with an odd number of quotes",
         _elastix_file('(ImageSampler "Random)'), r"rigid\.txt:6: odd number of quotes"),
    Case("elastix", "a parenthesis inside a parameter-file entry",
         _elastix_file('(ImageSampler ("Random"))'),
         r"rigid\.txt:6: a parenthesis inside the entry"),
    Case("elastix", "a parameter name with punctuation", _elastix_file("(Image-Sampler 1)"),
         r"rigid\.txt:6: 'Image-Sampler' is not a parameter name"),
    Case("elastix", "a parameter given twice in one file",
         _elastix_file("(MaximumNumberOfIterations 50)"),
         r"rigid\.txt:6: MaximumNumberOfIterations is given twice \(first on line 5\)"),
    Case("elastix", "a component name elastix does not know (run time)",
         _elastix_run(ELASTIX_MAP.replace('"EulerTransform"', '"EulerTransfrom"')),
         r"rigid\.txt:2: elastix refused \(Transform \"EulerTransfrom\"\): The following "
         r"component could not be created: EulerTransfrom"),
    Case("elastix", "a parameter file without a component elastix needs (run time)",
         _elastix_run(ELASTIX_MAP.replace('(Optimizer "AdaptiveStochasticGradientDescent")\n',
                                          "")),
         r"rigid\.txt: elastix needs a \(Optimizer \.\.\.\) entry"),
]


def message_of(case: Case, folder: Path) -> str:
    with pytest.raises((InputError, SettingsError, ValueError)) as caught:
        case.make(folder)
    return str(caught.value).replace(str(folder) + os.sep, "").replace(str(folder), ".")


@pytest.mark.parametrize("case", CASES, ids=[c.given for c in CASES])
def test_bad_input_gets_a_named_error(case: Case, tmp_path: Path):
    message = message_of(case, tmp_path)
    assert re.search(case.expected, message), message
    assert "Traceback" not in message


def render(tmp_path: Path) -> str:
    lines = [
        "# Bad inputs and their errors",
        "",
        "What the pipeline says when an input is wrong: each row is a real call on a bad input,",
        "run by `tests/test_bad_inputs.py`, which also renders this page from the messages it",
        "got (paths shortened to the file's name). Inputs are never modified; the message names",
        "the file or the key and the problem. Rewrite it with",
        "`REGSEGBENCH_WRITE_CATALOGUE=1 ./run test tests/test_bad_inputs.py`.",
        "",
        "| area | input | error |",
        "|---|---|---|",
    ]
    for index, case in enumerate(CASES):
        folder = tmp_path / str(index)
        folder.mkdir()
        message = message_of(case, folder).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {case.area} | {case.given} | `{message}` |")
    return "\n".join(lines) + "\n"


def test_catalogue_is_current(tmp_path: Path):
    text = render(tmp_path)
    if os.environ.get("REGSEGBENCH_WRITE_CATALOGUE"):
        CATALOGUE.write_text(text, encoding="utf-8")
    assert CATALOGUE.read_text(encoding="utf-8") == text, (
        "docs/bad-inputs.md is out of date: REGSEGBENCH_WRITE_CATALOGUE=1 ./run test "
        "tests/test_bad_inputs.py")
