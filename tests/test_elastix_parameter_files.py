"""`elastix_cnn.parameter_files`: the user's own elastix parameter maps, with the real
itk-elastix on the 48³ scenes of tests/test_elastix_cnn.py (a few seconds per registration).

The maps are written by the tests: a rigid map and a B-spline map whose values differ from the
config's schedule (iterations, grid spacing), so the result shows which one elastix ran.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import SimpleITK as sitk
from test_elastix_cnn import FAST, dice, run_cli, write_pair

from baselines.elastix_cnn import parameter_files
from baselines.elastix_cnn.settings import Settings
from liverbench.data.preprocess import resample_mask
from liverbench.evaluation.provenance import collect
from liverbench.settings import SettingsError

COMMON = """\
(Optimizer "AdaptiveStochasticGradientDescent")
(AutomaticParameterEstimation "true")
(NumberOfSpatialSamples 500)
(NewSamplesEveryIteration "true")
(Interpolator "BSplineInterpolator")
(BSplineInterpolationOrder 1)
(ResampleInterpolator "FinalBSplineInterpolator")
(Resampler "DefaultResampler")
(NumberOfHistogramBins 24)
(ErodeMask "false")
"""
RIGID = """\
// A lab's rigid map
(Registration "MultiResolutionRegistration")
(Transform "EulerTransform")
(Metric "AdvancedMattesMutualInformation")
(AutomaticScalesEstimation "true")
(AutomaticTransformInitialization "true")   // centre of gravity: no pre-alignment here
(AutomaticTransformInitializationMethod "CenterOfGravity")
(MaximumNumberOfIterations 37)
(NumberOfResolutions 2)
(ImagePyramidSchedule 2 2 2 1 1 1)
(ImageSampler "RandomSparseMask")
(WriteResultImage "true")
(MaximumNumberOfThreads 8)
""" + COMMON
BSPLINE = """\
(Registration "MultiMetricMultiResolutionRegistration")
(Transform "BSplineTransform")
(Metric "AdvancedMattesMutualInformation" "TransformBendingEnergyPenalty")
(Metric0Weight 1)
(Metric1Weight 50)
(FinalGridSpacingInPhysicalUnits 40)
(MaximumNumberOfIterations 23)
(NumberOfResolutions 1)
(ImageSampler "RandomCoordinate")
""" + COMMON


def write_maps(folder: Path, rigid: str = RIGID, bspline: str = BSPLINE) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rigid.txt").write_text(rigid)
    (folder / "bspline.txt").write_text(bspline)
    return [str(folder / "rigid.txt"), str(folder / "bspline.txt")]


def grid_spacing(transform_file: Path) -> list[float]:
    match = re.search(r"\(GridSpacing ([^)]*)\)", transform_file.read_text())
    assert match, transform_file
    return [float(value) for value in match.group(1).split()]


def transform_parameters(transform_file: Path) -> list[float]:
    match = re.search(r"\(TransformParameters ([^)]*)\)", transform_file.read_text())
    assert match, transform_file
    return [float(value) for value in match.group(1).split()]


def test_user_maps_are_used_as_given(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    files = write_maps(tmp_path / "maps")
    before = [Path(name).read_bytes() for name in files]
    paths = write_pair(tmp_path / "pair")
    # the config's schedule (FAST: 24 mm grid) is there too: the files win
    assert run_cli(tmp_path / "own", paths, {**FAST, "parameter_files": files}) == 0
    log = capsys.readouterr().out
    assert run_cli(tmp_path / "schedule", paths, FAST) == 0

    own = tmp_path / "own" / "transforms" / "P1__P1"
    schedule = tmp_path / "schedule" / "transforms" / "P1__P1"
    assert '(Transform "EulerTransform")' in (own / "TransformParameters.0.txt").read_text()
    # elastix widens the final grid spacing a little to fit the (rigidly mapped) domain
    own_spacing = grid_spacing(own / "TransformParameters.1.txt")
    schedule_spacing = grid_spacing(schedule / "TransformParameters.1.txt")
    assert all(40.0 <= value < 44.0 for value in own_spacing), own_spacing
    assert all(24.0 <= value < 27.0 for value in schedule_spacing), schedule_spacing
    assert transform_parameters(own / "TransformParameters.0.txt") != transform_parameters(
        schedule / "TransformParameters.0.txt")
    elastix_log = (own / "elastix.log").read_text()
    assert "(MaximumNumberOfIterations 37)" in elastix_log
    assert "(MaximumNumberOfIterations 23)" in elastix_log
    assert "(FinalGridSpacingInPhysicalUnits 40)" in elastix_log
    # the maps elastix ran are kept: the user's values, the pipeline's overrides
    kept = (own / "parameters.0.txt").read_text()
    assert "(MaximumNumberOfIterations 37)" in kept and '(WriteResultImage "false")' in kept
    assert "(MaximumNumberOfThreads 1)" in kept  # the rule's threads (here --threads 1)
    # each override is logged with its reason; keys at elastix's own value are not
    assert f"{files[0]}: WriteResultImage true -> false (the liver mask" in log
    assert f"{files[0]}: MaximumNumberOfThreads 8 -> 1" in log
    assert f"{files[1]}: WriteResultImage not given -> false" in log
    assert "HowToCombineTransforms" not in log  # not given: elastix composes anyway
    assert [Path(name).read_bytes() for name in files] == before  # inputs never modified

    digest = hashlib.sha256(before[0]).hexdigest()
    assert f"{files[0]} sha256 {digest}" in log
    record = json.loads((tmp_path / "own" / "rt" / "P1__P1.json").read_text())
    assert record["extra"]["parameter_files"][0] == {"file": files[0], "sha256": digest}
    assert json.loads((tmp_path / "schedule" / "rt" / "P1__P1.json").read_text())[
        "extra"]["parameter_files"] is None

    ncect = sitk.ReadImage(str(paths["ncect"]))
    prediction = sitk.ReadImage(str(tmp_path / "own" / "pred" / "P1__P1.nii.gz"))
    start = dice(resample_mask(paths["moving_liver"], ncect), paths["truth"])
    assert dice(prediction, paths["truth"]) > max(0.8, start + 0.1)  # a real registration


@pytest.mark.parametrize(("line", "problem"), [
    ('(Transform "EulerTransform"', "no closing parenthesis"),
    ("Transform EulerTransform", "not a (Key value ...) entry or a // comment"),
    ("(NumberOfResolutions)", "needs a parameter name and at least one value"),
    ('(Metric "AdvancedMattesMutualInformation)', "odd number of quotes"),
    ('(Transform "BSplineTransform")', "Transform is given twice (first on line 3)"),
])
def test_malformed_line_is_refused_before_elastix(tmp_path: Path, capsys, line: str,
                                                  problem: str) -> None:
    lines = RIGID.splitlines()
    lines.insert(4, line)  # line 5
    files = write_maps(tmp_path, rigid="\n".join(lines) + "\n")
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({"parameter_files": files}, section="elastix_cnn")
    assert str(caught.value).startswith(f"elastix_cnn.parameter_files[0]: {files[0]}:5: ")
    assert problem in str(caught.value)
    # the command line refuses it the same way, before elastix loads: exit 2, one line
    assert run_cli(tmp_path, {name: tmp_path / "none" for name in (
        "cect", "ncect", "cect_liver", "ncect_liver", "cect_rt", "ncect_rt")},
        {"parameter_files": files}) == 2
    assert f"{files[0]}:5: " in capsys.readouterr().err


def test_missing_file_names_the_key(tmp_path: Path, monkeypatch) -> None:
    files = write_maps(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=re.escape(
            "elastix_cnn.parameter_files[1]: maps/bspline.txt: file not found (relative paths "
            f"are from the working directory, {tmp_path})")):
        Settings.from_mapping({"parameter_files": ["rigid.txt", "maps/bspline.txt"]},
                              section="elastix_cnn")
    # relative to the working directory: found from there
    assert Settings.from_mapping({"parameter_files": ["rigid.txt"]}).parameter_files == (
        "rigid.txt",)
    with pytest.raises(SettingsError, match=r"parameter_files: .*at least one file"):
        Settings.from_mapping({"parameter_files": []})
    assert Path(files[0]).is_file()


def test_value_elastix_refuses_names_file_and_line(tmp_path: Path, capsys) -> None:
    """elastix rejects a value at run time (second stage): the job stops naming the file and
    its line (the first file has the same key, so the stage decides), not a pair's failure."""
    files = write_maps(tmp_path / "maps",
                       bspline=BSPLINE.replace("(MaximumNumberOfIterations 23)",
                                               "(MaximumNumberOfIterations many)"))
    paths = write_pair(tmp_path / "pair")
    assert run_cli(tmp_path, paths, {**FAST, "parameter_files": files}) == 2
    error = capsys.readouterr().err
    assert f"{files[1]}:7: elastix refused (MaximumNumberOfIterations many): " in error, error
    assert "MaximumNumberOfIterations" in error.split("elastix refused", 1)[1]
    assert not (tmp_path / "rt" / "P1__P1.json").exists()  # not recorded as a pair failure

    unknown = write_maps(tmp_path / "unknown", rigid=RIGID.replace('"EulerTransform"',
                                                                   '"EulerTransfrom"'))
    assert run_cli(tmp_path / "u", paths, {**FAST, "parameter_files": unknown}) == 2
    error = capsys.readouterr().err
    assert (f'{unknown[0]}:3: elastix refused (Transform "EulerTransfrom"): The following '
            "component could not be created: EulerTransfrom") in error, error


def test_elastix_reader_errors_name_the_line(tmp_path: Path) -> None:
    """An error of elastix's own reader (a fallback: the check above refuses these first) comes
    back with the line it quotes found in the file."""
    import itk

    text = RIGID + "(Bad|Name 1)\n"
    path = tmp_path / "rigid.txt"
    path.write_text(text)
    with pytest.raises(RuntimeError) as caught:
        itk.ParameterObject.New().ReadParameterFile(str(path))
    message = parameter_files._reader_error(str(path), str(caught.value))
    expected = (f"{path}:{len(text.splitlines())}: elastix's reader refuses '(Bad|Name 1)': "
                'The parameter "Bad|Name" contains invalid')
    assert message.startswith(expected), message
    with pytest.raises(parameter_files.ParameterFileError,
                       match=rf"{re.escape(str(path))}:{len(text.splitlines())}: 'Bad\|Name'"):
        parameter_files.load([str(path)], 1)


def test_iterations_and_provenance(tmp_path: Path, monkeypatch) -> None:
    files = write_maps(tmp_path)
    assert parameter_files.iterations(files) == 2 * 37 + 1 * 23
    (tmp_path / "bare.txt").write_text('(Transform "EulerTransform")\n')
    assert parameter_files.iterations([str(tmp_path / "bare.txt")]) == 3 * 500
    record = collect({"elastix_cnn": {"parameter_files": files}}, with_gpu=False)
    assert record["elastix_parameter_files"] == [
        {"file": name, "sha256": hashlib.sha256(Path(name).read_bytes()).hexdigest()}
        for name in files]
    assert collect({"elastix_cnn": {"parameter_files": None}},
                   with_gpu=False)["elastix_parameter_files"] is None
