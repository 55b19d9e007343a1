"""DeepMedic baseline: size arithmetic, exact tiled inference, training, transfer, resume,
clear errors, and the CLI end to end — all on tiny networks and generated blob volumes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from baselines.deepmedic.__main__ import main
from baselines.deepmedic.checkpoint import CheckpointError, load_model, load_pretrained
from baselines.deepmedic.model import DeepMedic
from baselines.deepmedic.predict import full_probabilities, segment, tiled_probabilities
from baselines.deepmedic.sampling import SegmentSampler, Volume, standardise
from baselines.deepmedic.settings import Architecture, Settings
from baselines.deepmedic.train import dice, train_stage

TINY = Architecture(feature_maps=(6, 6, 8, 8), residual_layers=(2, 4), fc=(12,), dropout=0.2)
SHAPE = (24, 24, 24)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def tiny_settings(**changes) -> Settings:
    settings = Settings(
        architecture=TINY, segment_train=(15, 15, 15), segment_infer=(20, 20, 20),
        batch_size=4, lr=3e-3, lr_finetune=1e-3, iterations_pretrain=60,
        iterations_finetune=6, validate_every=1000, checkpoint_every=2, seed=7,
        device="cpu", threads=1,
    )
    return replace(settings, **changes)


def blob_case(seed: int, liver_value: float = 0.62) -> tuple[np.ndarray, np.ndarray]:
    """A body (ellipsoid, 0.45) holding a liver (ellipsoid, `liver_value`) and a smaller
    distractor organ, with noise; raw values in [0, 1] like preprocessed CT."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in SHAPE), indexing="ij")

    def ellipsoid(centre, radii):
        return sum(((c - m) / r) ** 2 for c, m, r in zip((z, y, x), centre, radii)) <= 1

    body = ellipsoid((12, 12, 12), (11, 10, 11))
    liver_centre = (12 + rng.uniform(-2, 2), 10 + rng.uniform(-2, 2), 9 + rng.uniform(-2, 2))
    liver = ellipsoid(liver_centre, rng.uniform(4, 6, size=3)) & body
    other = ellipsoid((12, 15, 17), (3, 3, 3)) & body & ~liver
    image = np.where(body, 0.45, 0.0) + np.where(liver, liver_value - 0.45, 0.0)
    image += np.where(other, 0.1, 0.0) + rng.normal(0, 0.03, SHAPE) * body
    return np.clip(image, 0, 1).astype(np.float32), liver.astype(np.uint8)


def volume_of(seed: int) -> Volume:
    raw, label = blob_case(seed)
    image, air = standardise(raw)
    return Volume(f"blob{seed}", image, label, air)


def write_case(folder: Path, seed: int) -> tuple[Path, Path, Path]:
    """A preprocessed image + label (2 mm grid), and the 'original' nCECT it came from: the
    same body in HU, on another grid."""
    folder.mkdir(parents=True, exist_ok=True)
    raw, label = blob_case(seed)
    paths = []
    for name, array in (("ncect", raw), ("ncect_liver", label)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((2.0, 2.0, 2.0))
        image.SetOrigin((-23.0, -23.0, -23.0))
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
        paths.append(folder / f"{name}.nii.gz")
    hu = sitk.GetImageFromArray((raw * 400.0 - 160.0).astype(np.float32))  # window -160..240
    hu.SetSpacing((2.0, 2.0, 2.0))
    hu.SetOrigin((-23.0, -23.0, -23.0))
    grid = sitk.Image([30, 30, 18], sitk.sitkInt16)
    grid.SetSpacing((1.6, 1.6, 2.5))
    grid.SetOrigin((-23.0, -23.0, -21.0))
    original = sitk.Cast(sitk.Resample(hu, grid, sitk.Transform(), sitk.sitkLinear, -1000.0),
                         sitk.sitkInt16)
    sitk.WriteImage(original, str(folder / "original.nii.gz"))
    return paths[0], paths[1], folder / "original.nii.gz"


# --- size arithmetic and exact tiling ----------------------------------------------------


@pytest.mark.parametrize(
    "architecture", [Architecture(), TINY, replace(TINY, subsample_factors=(3, 5))]
)
def test_output_size_is_input_minus_receptive_field_plus_one(architecture: Architecture) -> None:
    model = DeepMedic(architecture).eval()
    geometry = model.geometry
    layers = len(architecture.feature_maps)
    assert geometry.pathway_receptive_field == 1 + 2 * layers
    with torch.no_grad():
        for pathway in model.pathways:  # each at its own resolution
            sizes = [geometry.pathway_receptive_field + extra for extra in (0, 3, 4)]
            out = pathway(torch.zeros(1, 1, *sizes))
            assert list(out.shape[2:]) == [s - geometry.pathway_receptive_field + 1 for s in sizes]
        output = geometry.valid_output_size(4)
        size = geometry.input_size(output)
        logits = model(torch.zeros(2, 1, size, size, size))
    assert logits.shape == (2, 2) + (size - geometry.receptive_field + 1,) * 3
    if architecture == Architecture():
        assert geometry.receptive_field == 2 * 3 * 8 + 1  # context pathway at x3: 49 voxels


@pytest.mark.parametrize("factors", [(3,), (3, 5)])
def test_tiled_inference_equals_full_volume_forward(factors: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = DeepMedic(replace(TINY, subsample_factors=factors)).eval()
    for module in model.modules():  # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    rng = np.random.default_rng(1)
    volume = Volume("noise", rng.normal(size=(31, 20, 17)).astype(np.float32), None, -1.5)
    segment_size = (9 + 15, 9 + 5, 9 + 5)  # several tiles along every axis
    tiled = tiled_probabilities(model, volume, segment_size)
    full = full_probabilities(model, volume, segment_size)
    assert tiled.shape == volume.image.shape
    np.testing.assert_allclose(tiled, full, atol=1e-5)
    assert tiled.std() > 1e-3  # not a constant map


# --- training, transfer, resume -----------------------------------------------------------


def test_training_lowers_loss_and_beats_all_background(tmp_path: Path) -> None:
    settings = tiny_settings()
    train = [volume_of(seed) for seed in range(4)]
    model = train_stage(settings, "pretrain", train, tmp_path / "model.pt",
                        losses_path=tmp_path / "losses.csv", progress=False)
    losses = pd.read_csv(tmp_path / "losses.csv")
    assert list(losses["stage"].unique()) == ["pretrain"] and len(losses) == 60
    assert losses["loss"].tail(10).mean() < 0.6 * losses["loss"].head(10).mean()
    test = volume_of(100)
    mask = segment(model, test, settings.segment_infer)
    accuracy = (mask == test.label).mean()
    background_accuracy = (test.label == 0).mean()
    assert accuracy > background_accuracy
    assert dice(mask, test.label) > 0.7
    assert not (tmp_path / "model.pt.checkpoint").exists()


def test_pretrained_weights_load_into_the_finetuning_model(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    settings = tiny_settings(iterations_pretrain=3)
    volumes = [volume_of(seed) for seed in range(2)]
    pretrained = train_stage(settings, "pretrain", volumes, tmp_path / "pretrained.pt",
                             progress=False)
    fresh = DeepMedic(settings.architecture)
    weight = "pathways.1.layers.2.conv.weight"
    assert not torch.equal(fresh.state_dict()[weight], pretrained.state_dict()[weight])
    history = load_pretrained(fresh, tmp_path / "pretrained.pt")
    assert torch.equal(fresh.state_dict()[weight], pretrained.state_dict()[weight])
    assert [row["stage"] for row in history] == ["pretrain"] * 3

    train_stage(settings, "finetune", volumes, tmp_path / "model.pt", val_volumes=volumes[:1],
                init_path=tmp_path / "pretrained.pt", losses_path=tmp_path / "losses.csv",
                progress=False)
    # one line per epoch (validate_every iterations) into the log (README, "Following a run")
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("deepmedic finetune epoch")]
    assert lines and re.fullmatch(r"deepmedic finetune epoch 1/1: loss \d+\.\d{4} \| "
                                  r"val_dsc \d\.\d{4} \| \d+\.\d s", lines[-1]), lines
    losses = pd.read_csv(tmp_path / "losses.csv")
    assert losses["stage"].tolist() == ["pretrain"] * 3 + ["finetune"] * 6
    assert losses["val_dsc"].notna().sum() == 1  # validated at the end of the stage

    other = DeepMedic(replace(settings.architecture, fc=(7,)))
    with pytest.raises(CheckpointError, match="differs from the fine-tuning architecture"):
        load_pretrained(other, tmp_path / "pretrained.pt")


def test_interrupted_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    settings = tiny_settings(iterations_pretrain=5)
    volumes = [volume_of(seed) for seed in range(2)]
    straight = train_stage(settings, "pretrain", volumes, tmp_path / "a.pt", progress=False)

    def crash(iteration: int) -> None:
        if iteration == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stage(settings, "pretrain", volumes, tmp_path / "b.pt", on_iteration=crash,
                    progress=False)
    assert (tmp_path / "b.pt.checkpoint").exists() and not (tmp_path / "b.pt").exists()
    resumed = train_stage(settings, "pretrain", volumes, tmp_path / "b.pt",
                          losses_path=tmp_path / "b.csv", progress=False)
    for name, value in straight.state_dict().items():
        assert torch.allclose(value.float(), resumed.state_dict()[name].float()), name
    assert pd.read_csv(tmp_path / "b.csv")["iteration"].tolist() == [1, 2, 3, 4, 5]


# --- settings ---------------------------------------------------------------------------


def test_settings_keep_architecture_keys_flat_and_import_no_torch() -> None:
    settings = Settings.from_mapping({"fc": [12], "kernel": 5, "batch_size": 3}, "deepmedic")
    assert settings.architecture == Architecture(fc=(12,), kernel=5)
    flat = settings.to_dict()
    assert "architecture" not in flat and flat["fc"] == [12] and flat["batch_size"] == 3
    assert Settings.from_mapping(flat) == settings
    assert Settings.from_mapping(Settings().to_dict()) == Settings()
    assert settings.replace(architecture=TINY).architecture == TINY
    assert settings.replace(fc=(7,)).architecture.fc == (7,)
    code = ("import sys, baselines.deepmedic, baselines.deepmedic.settings; "
            "assert 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- clear errors -------------------------------------------------------------------------


def test_bad_input_gives_clear_errors(tmp_path: Path) -> None:
    model = DeepMedic(TINY).eval()
    small = model.geometry.receptive_field - 1
    with pytest.raises(ValueError, match="smaller than the receptive field"):
        model(torch.zeros(1, 1, small, 40, 40))
    size = model.geometry.input_size(3)
    with pytest.raises(ValueError, match="expected 1 input channel"):
        model(torch.zeros(1, 2, size, size, size))
    with pytest.raises(ValueError, match="does not fit the context pathways"):
        model(torch.zeros(1, 1, size + 1, size, size))
    with pytest.raises(ValueError, match="deepmedic.feature_map: unknown setting"):
        Settings.from_mapping({"feature_map": [1]}, section="deepmedic")
    with pytest.raises(ValueError, match="deepmedic.kernel: must be odd"):
        Settings.from_mapping({"kernel": 4}, section="deepmedic")
    empty = Volume("empty", np.zeros(SHAPE, np.float32), np.zeros(SHAPE, np.uint8), 0.0)
    with pytest.raises(ValueError, match="empty: the liver label is empty"):
        SegmentSampler([empty], (27, 27, 27), (3, 3, 3), 0.5, np.random.default_rng(0))
    missing = tmp_path / "missing.nii.gz"
    code = main(["train", "--stage", "pretrain", "--images", str(missing), "--labels",
                 str(missing), "--out", str(tmp_path / "m.pt")])
    assert code == 2


def test_cli_error_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    image, _, _ = write_case(tmp_path / "case", 0)
    hu = sitk.GetImageFromArray(np.full(SHAPE, 100, np.int16))
    sitk.WriteImage(hu, str(tmp_path / "hu.nii.gz"))
    code = main(["train", "--stage", "pretrain", "--images", str(tmp_path / "hu.nii.gz"),
                 "--labels", str(image), "--out", str(tmp_path / "m.pt")])
    assert code == 2
    assert "hu.nii.gz: expected a preprocessed image" in capsys.readouterr().err


# --- the CLI end to end -------------------------------------------------------------------


def test_cli_pretrain_finetune_predict(tmp_path: Path) -> None:
    cases = [write_case(tmp_path / f"P{i}", i) for i in range(3)]
    settings = json.dumps({
        "feature_maps": list(TINY.feature_maps), "residual_layers": [2, 4], "fc": [12],
        "segment_train": [15, 15, 15], "segment_infer": [20, 20, 20], "batch_size": 4,
        "iterations_pretrain": 4, "iterations_finetune": 4, "checkpoint_every": 2,
        "device": "cpu", "threads": 1,
    })
    models = tmp_path / "models"
    common = ["--settings", settings, "--no-progress", "--threads", "1"]
    assert main(["train", "--stage", "pretrain", *common, "--images", str(cases[0][0]),
                 "--labels", str(cases[0][1]), "--out", str(models / "pretrained.pt")]) == 0
    assert main(["train", "--stage", "finetune", *common, "--init",
                 str(models / "pretrained.pt"), "--images", str(cases[1][0]), "--labels",
                 str(cases[1][1]), "--val-images", str(cases[2][0]), "--val-labels",
                 str(cases[2][1]), "--out", str(models / "model.pt"), "--losses",
                 str(models / "losses.csv")]) == 0
    assert set(pd.read_csv(models / "losses.csv")["stage"]) == {"pretrain", "finetune"}
    model, saved = load_model(models / "model.pt")
    assert saved["stage"] == "finetune" and model.architecture.fc == (12,)

    out = tmp_path / "pred" / "P2__P2.nii.gz"
    record = tmp_path / "runtime" / "P2__P2.json"
    predict = ["predict", "--settings", settings, "--model", str(models / "model.pt"),
               "--preprocess", json.dumps({"shape": list(SHAPE), "spacing": [2.0] * 3,
                                           "window": [-160, 240]}),
               "--pairs", "P2__P2", "--ncect", str(cases[2][2]), "--predictions", str(out),
               "--runtimes"]
    assert main([*predict, str(record), str(record)]) == 2  # lists of different lengths
    assert main([*predict, str(record)]) == 0
    mask = sitk.ReadImage(str(out))
    original = sitk.ReadImage(str(cases[2][2]))
    assert mask.GetSize() == original.GetSize()
    assert mask.GetSpacing() == original.GetSpacing()
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayViewFromImage(mask))) <= {0, 1}
    runtime = json.loads(record.read_text())
    assert runtime["method"] == "deepmedic" and runtime["pair"] == "P2__P2"
    assert 0 < runtime["seconds_core"] <= runtime["seconds_case"]
    # one scope: from the original nCECT as read, its working grid made here, to the mask
    assert set(runtime["stages"]) == {"read", "working_grid", "network", "map_back", "write"}
    assert runtime["seconds_case"] == pytest.approx(sum(runtime["stages"].values()), abs=1e-3)
    assert runtime["threads"] == 1
