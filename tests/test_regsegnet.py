"""RegSegNet: spatial transformer, losses, cascade-wise training, resume, errors, CLI.

Real components at tiny sizes, one CPU thread, on generated pairs (`synthetic_pairs`).
Settings: test_regsegnet_settings.py; augmentation: test_regsegnet_augment.py; the final
mapping: test_regsegnet_mapping.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic_pairs import (
    SPACING,
    TINY,
    generated_pair,
    grid,
    tensor,
    write_original_ncect,
    write_pair,
    write_pairs,
    write_prealign,
)

from liverbench.data.io import ImageError, read_image, write_array
from liverbench.errors import InputError
from liverbench.runtime import Stages, write_stages
from regsegnet.checkpoint import CheckpointError, load_model
from regsegnet.data import load_pair, load_pairs, make_batch
from regsegnet.losses import RegistrationLoss, hard_dice
from regsegnet.model import FieldNet, RegSegNet, SpatialTransformer
from regsegnet.settings import LossWeights, Settings
from regsegnet.train import Trainer, train

ROOT = Path(__file__).resolve().parent.parent

torch.set_num_threads(1)


# --- spatial transformer -------------------------------------------------------------------------


def test_zero_field_is_identity():
    rng = np.random.default_rng(1)
    image = tensor(rng.random((9, 10, 11)))
    cube = tensor(np.pad(np.ones((3, 4, 5)), 3))
    zero = torch.zeros(1, 3, 9, 10, 11)
    transform = SpatialTransformer()
    torch.testing.assert_close(transform.image(image, zero), image, atol=1e-6, rtol=0)
    torch.testing.assert_close(transform.mask(cube, zero, nearest=True), cube, atol=0, rtol=0)


@pytest.mark.parametrize("shift", [(2, 0, 0), (0, -3, 0), (0, 0, 1), (1, 2, -2)])
def test_translation_moves_cube_by_exactly_that_many_voxels(shift):
    cube = np.zeros((16, 16, 16), dtype=np.float32)
    cube[6:10, 5:9, 7:11] = 1
    field = torch.tensor(shift, dtype=torch.float32).reshape(1, 3, 1, 1, 1).expand(1, 3, 16, 16, 16)
    warped = SpatialTransformer().mask(tensor(cube), field.contiguous())[0, 0].numpy()
    # warped(x) = cube(x + u): the cube moves by -u voxels
    expected = np.roll(cube, [-s for s in shift], axis=(0, 1, 2))
    np.testing.assert_allclose(warped, expected, atol=1e-5)


def test_composed_translations_add():
    a = torch.tensor([1.0, -2.0, 0.5]).reshape(1, 3, 1, 1, 1).expand(1, 3, 12, 12, 12)
    b = torch.tensor([0.5, 1.0, 2.0]).reshape(1, 3, 1, 1, 1).expand(1, 3, 12, 12, 12)
    composed = SpatialTransformer().compose(a.contiguous(), b.contiguous())
    torch.testing.assert_close(composed, (a + b).contiguous(), atol=1e-5, rtol=0)


def test_field_net_accepts_shapes_not_divisible_by_its_stride():
    net = FieldNet((4, 8, 8))
    field = net(torch.rand(1, 1, 10, 13, 18), torch.rand(1, 1, 10, 13, 18))
    assert field.shape == (1, 3, 10, 13, 18)
    assert field.abs().max() < 1e-2  # starts near the identity


# --- losses --------------------------------------------------------------------------------------


def test_mutual_information_of_image_with_itself_exceeds_shuffled_copy():
    image = tensor(generated_pair((24, 24, 24))[2])
    order = torch.randperm(image.numel(), generator=torch.Generator().manual_seed(0))
    shuffled = image.flatten()[order]
    loss = RegistrationLoss(LossWeights(), mi_bins=23, mi_samples=4096)
    mask, field = torch.zeros_like(image), torch.zeros(1, 3, 24, 24, 24)
    generator = torch.Generator().manual_seed(0)
    with_itself = loss(image, image, mask, mask, field, generator).mi
    with_shuffled = loss(shuffled.reshape(image.shape), image, mask, mask, field, generator).mi
    assert -with_itself > -with_shuffled + 0.5  # MONAI's term is −MI


def test_bending_energy_of_affine_field_is_zero_and_of_a_bump_is_not():
    z, y, x = torch.meshgrid(*[torch.arange(16.0)] * 3, indexing="ij")
    affine = torch.stack([0.1 * z + 0.05 * x + 1, -0.2 * y + 0.3, 0.02 * x + 0.1 * z])[None]
    bump = affine + 2 * torch.exp(-((z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2) / 8)
    energy = RegistrationLoss(LossWeights()).bending
    assert float(energy(affine)) < 1e-8
    assert float(energy(bump)) > 1e-3


def test_hard_dice():
    a = torch.zeros(1, 1, 4, 4, 4)
    a[..., :2, :, :] = 1
    b = torch.zeros(1, 1, 4, 4, 4)
    b[..., 1:3, :, :] = 1
    assert hard_dice(a, b) == pytest.approx(0.5)
    assert hard_dice(torch.zeros_like(a), torch.zeros_like(a)) == 1.0


# --- cascade-wise training -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs"))


def _parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_each_cascade_trains_alone(pairs_dir):
    pairs = load_pairs([pairs_dir / "A__B", pairs_dir / "B__B"])
    settings = Settings.from_mapping({**TINY, "cascades": 3, "iterations": 1})
    trainer = Trainer(settings, pairs[:1], pairs[1:])
    batch = make_batch(pairs[:1])
    before = [_parameters(c) for c in trainer.model.cascades]
    trainer.train_step(0, batch)
    after_first = [_parameters(c) for c in trainer.model.cascades]
    assert not _same(before[0], after_first[0]), "cascade 1 did not learn"
    assert _same(before[1], after_first[1]) and _same(before[2], after_first[2])
    for _ in range(2):
        trainer.train_step(1, batch)
    after_second = [_parameters(c) for c in trainer.model.cascades]
    assert _same(after_first[0], after_second[0]), "frozen cascade 1 changed"
    assert not _same(after_first[1], after_second[1]), "cascade 2 did not learn"
    assert _same(after_first[2], after_second[2])


def test_training_raises_dice_well_above_identity(tmp_path):
    pair_dir = write_pair(tmp_path / "P__P", shape=(32, 32, 32), shift=(2.0, 3.0, -3.0))
    pair = load_pair(pair_dir)
    identity = hard_dice(tensor(pair.moving_mask), tensor(pair.fixed_mask))
    settings = Settings.from_mapping(
        {"channels": [8, 16, 16], "cascades": 1, "mi_samples": 4096, "lr": 3e-3, "iterations": 1}
    )
    trainer = Trainer(settings, [pair], [pair])
    batch = make_batch([pair])
    for _ in range(200):
        trainer.train_step(0, batch)
    learned = trainer.validate(1)
    assert identity < 0.6
    assert learned > identity + 0.25, (identity, learned)


class Killed(Exception):
    """Stands for a SIGKILL after the first epoch's checkpoint was written."""


def _kill_after_first_epoch(message: str) -> None:
    if re.match(r"\S+ epoch 1/", message):  # the epoch line (liverbench.progress)
        raise Killed


def test_resumed_training_equals_uninterrupted(pairs_dir, tmp_path):
    folders = [pairs_dir / "A__B", pairs_dir / "A__A"]
    val = [pairs_dir / "B__B"]
    settings = Settings.from_mapping({**TINY, "cascades": 2, "iterations": 3, "seed": 7,
                                      "epochs": 2})
    with pytest.raises(Killed):
        train(settings, folders, val, tmp_path / "resumed", progress=False,
              log=_kill_after_first_epoch)
    assert (tmp_path / "resumed" / "checkpoint.pt").is_file()
    messages: list[str] = []
    resumed = train(settings, folders, val, tmp_path / "resumed", progress=False,
                    log=messages.append)
    assert resumed.epochs_run == 1 and any("resuming after epoch 1" in m for m in messages)
    straight = train(settings, folders, val, tmp_path / "straight", progress=False,
                     log=lambda m: None)
    assert straight.epochs_run == 2
    assert straight.kept_epoch == 2  # model_selection: last, the rule of every trained method
    a = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    def losses(folder):  # all but the last column, seconds
        return [line.rsplit(",", 1)[0] for line in (folder / "losses.csv").read_text().splitlines()]

    assert len(losses(tmp_path / "resumed")) == 1 + 2 * 2
    assert losses(tmp_path / "resumed") == losses(tmp_path / "straight")
    # the model is final: no checkpoint is left for a later run to resume
    assert not (tmp_path / "resumed" / "checkpoint.pt").exists()


def test_checkpoint_of_other_data_is_not_resumed(pairs_dir, tmp_path):
    """Pairs re-made (another window, grid...) keep their names and shape: the checkpoint's
    data digest tells them apart (issue #15: training 'resumed after epoch 2', trained 0
    epochs and wrote the old weights)."""
    folders = [shutil.copytree(pairs_dir / name, tmp_path / "pairs" / name)
               for name in ("A__B", "A__A")]
    settings = Settings.from_mapping({**TINY, "cascades": 1, "iterations": 2, "epochs": 2})
    with pytest.raises(Killed):
        train(settings, folders, [pairs_dir / "B__B"], tmp_path / "out", progress=False,
              log=_kill_after_first_epoch)
    moving = read_image(folders[1] / "moving.nii")
    write_array(1.0 - sitk.GetArrayFromImage(moving), moving, folders[1] / "moving.nii")
    messages: list[str] = []
    result = train(settings, folders, [pairs_dir / "B__B"], tmp_path / "out", progress=False,
                   log=messages.append)
    assert result.epochs_run == 2
    assert any("other settings or pairs (data)" in m for m in messages), messages


# --- bad input -----------------------------------------------------------------------------------


def test_pair_with_other_shape_than_expected_is_named(pairs_dir):
    with pytest.raises(ImageError, match=r"A__A/fixed\.nii.*\(32, 32, 32\)"):
        load_pair(pairs_dir / "A__A", shape=(32, 32, 32))


def test_raw_hu_image_is_refused(tmp_path, pairs_dir):
    folder = shutil.copytree(pairs_dir / "A__A", tmp_path / "X__X")
    hounsfield = np.full((24, 24, 24), 300.0, np.float32)
    write_array(hounsfield, grid((24, 24, 24)), folder / "moving.nii")
    with pytest.raises(ImageError, match=r"X__X/moving\.nii: values"):
        load_pair(folder)


def test_pair_whose_cect_liver_misses_the_grid_is_skipped_in_training(tmp_path, pairs_dir):
    folder = shutil.copytree(pairs_dir / "A__B", tmp_path / "C__B")
    empty = np.zeros((24, 24, 24), np.uint8)
    write_array(empty, grid((24, 24, 24)), folder / "moving_liver.nii")
    messages: list[str] = []
    pairs = load_pairs([folder, pairs_dir / "A__A"], log=messages.append)
    assert [pair.name for pair in pairs] == ["A__A"]
    assert "C__B/moving_liver.nii: mask is empty" in messages[0]
    with pytest.raises(ImageError, match=r"C__B/moving_liver\.nii: mask is empty"):
        load_pair(folder)


def test_missing_and_corrupt_checkpoints_are_named(tmp_path, pairs_dir):
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(CheckpointError, match=f"{missing}: file not found"):
        load_model(missing)
    corrupt = tmp_path / "model.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(CheckpointError, match=f"{corrupt}: not a readable checkpoint"):
        load_model(corrupt)
    # a damaged training checkpoint is named and training starts afresh (it blocked every
    # rerun, and the rule cannot pass --no-resume: issue #15)
    out = tmp_path / "training"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"\x00" * 64)
    messages: list[str] = []
    result = train(Settings.from_mapping({**TINY, "cascades": 1, "iterations": 1, "epochs": 1}),
                   [pairs_dir / "A__A"], [pairs_dir / "B__B"], out, progress=False,
                   log=messages.append)
    assert result.epochs_run == 1 and (out / "model.pt").is_file()
    assert any(re.search(r"training/checkpoint\.pt: not a readable checkpoint .*starting "
                         r"afresh", m) for m in messages), messages


def test_cascade_count_beyond_model_is_refused():
    model = RegSegNet(cascades=2, channels=(4, 8))
    with pytest.raises(ValueError, match="1..2"):
        model(torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 8), cascades=3)


# --- command line --------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "regsegnet", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )


def _predict_args(pairs: dict[str, Path], originals: dict[str, Path], out: Path) -> list[str]:
    """The per-pair lists of `predict`, in `pairs` order; outputs under `out`."""
    def each(option, files):
        return [option, *map(str, files)]

    names = list(pairs)
    return [
        *each("--pairs", names),
        *each("--moving", [pairs[n] / "moving.nii" for n in names]),
        *each("--moving-liver", [pairs[n] / "moving_liver.nii" for n in names]),
        *each("--fixed", [pairs[n] / "fixed.nii" for n in names]),
        *each("--prealign", [write_prealign(out / "pre" / f"{n}.tfm") for n in names]),
        *each("--original-ncect", [originals[n] for n in names]),
        # the original CECT liver: here the working-grid one (the pre-alignment is the identity)
        *each("--cect-liver", [pairs[n] / "moving_liver.nii" for n in names]),
        *each("--predictions", [out / "pred" / f"{n}.nii.gz" for n in names]),
        *each("--runtimes", [out / "rt" / f"{n}.json" for n in names]),
    ]


def test_cli_train_then_predict(tmp_path):
    shape = (16, 24, 24)
    pairs = {name: write_pair(tmp_path / "pairs" / name, shape=shape, seed=i)
             for i, name in enumerate(["P1__P1", "P2__P1", "P2__P2", "P3__P3"])}
    originals = {p: write_original_ncect(tmp_path / "data", p, shape) for p in ("P2", "P3")}
    settings = json.dumps({**TINY, "cascades": 2, "epochs": 1, "iterations": 2, "seed": 3})
    model_dir = tmp_path / "models" / "regsegnet"
    trained = _cli("train", "--settings", settings, "--threads", "1",
                   "--train-pairs", str(pairs["P1__P1"]), str(pairs["P2__P1"]),
                   "--val-pairs", str(pairs["P2__P2"]), "--out", str(model_dir))
    assert trained.returncode == 0, trained.stderr
    # one line per epoch (README, "Following a run"); no progress bar outside a terminal
    assert re.search(r"^regsegnet epoch 1/1: loss -?\d+\.\d{4} mi .* bending .* \| val_dice "
                     r"\d\.\d{4} \| \d+\.\d s$", trained.stderr, re.M), trained.stderr
    assert "\r" not in trained.stderr and "it/s" not in trained.stderr
    assert torch.load(model_dir / "model.pt", weights_only=True)["shape"] == list(shape)
    header = (model_dir / "losses.csv").read_text().splitlines()[0]
    assert header == "epoch,cascade,iterations,loss,mi,dice,bending,val_dice,seconds"

    test = {name: pairs[name] for name in ("P2__P2", "P3__P3")}
    ncects = {"P2__P2": originals["P2"], "P3__P3": originals["P3"]}
    warped = [str(tmp_path / "warped" / f"{name}.nii.gz") for name in test]
    mappings = [str(tmp_path / "mappings" / f"{name}.h5") for name in test]
    model = ["--model", str(model_dir / "model.pt")]
    timings = []
    for name in test:
        timings.append(str(tmp_path / "timing" / f"{name}.json"))
        write_stages(Stages({"read": 0.5, "prealign": 0.25, "working_grid": 0.125}), timings[-1])
    predicted = _cli("predict", "--settings", settings, "--threads", "1", *model,
                     *_predict_args(test, ncects, tmp_path), "--pair-timings", *timings,
                     "--warped", *warped,
                     "--mappings", *mappings, "--cascades", "1", "--method-name", "regsegnet_c1")
    assert predicted.returncode == 0, predicted.stderr
    for patient in ("P2", "P3"):
        mask = read_image(tmp_path / "pred" / f"{patient}__{patient}.nii.gz")
        original = read_image(originals[patient])
        assert mask.GetSize() == original.GetSize() and mask.GetSpacing() == original.GetSpacing()
        assert mask.GetPixelID() == sitk.sitkUInt8 and sitk.GetArrayViewFromImage(mask).any()
        warped_image = read_image(tmp_path / "warped" / f"{patient}__{patient}.nii.gz")
        assert warped_image.GetSize() == tuple(reversed(shape))
        mapping = sitk.ReadTransform(str(tmp_path / "mappings" / f"{patient}__{patient}.h5"))
        assert mapping.GetNumberOfTransforms() == 2  # pre-alignment, network field
        record = json.loads((tmp_path / "rt" / f"{patient}__{patient}.json").read_text())
        assert record["method"] == "regsegnet_c1" and record["extra"]["cascades"] == 1
        assert 0 < record["seconds_core"] <= record["seconds_case"]
        assert record["stages"]["network"] == record["seconds_core"]
        assert record["stages"]["pair.prealign"] == 0.25  # the pair step's, inherited
        assert record["seconds_case"] == pytest.approx(sum(record["stages"].values()),
                                                       abs=1e-3)
        assert record["device"] == "cpu" and record["threads"] == 1

    other = {"P4__P4": write_pair(tmp_path / "pairs" / "P4__P4")}
    wrong_shape = _cli("predict", *model,
                       *_predict_args(other, {"P4__P4": originals["P2"]}, tmp_path / "x"))
    assert wrong_shape.returncode == 2
    assert "P4__P4/fixed.nii:" in wrong_shape.stderr and "Traceback" not in wrong_shape.stderr

    one = {"P3__P3": pairs["P3__P3"]}
    missing = _cli("predict", "--model", str(tmp_path / "none.pt"),
                   *_predict_args(one, ncects, tmp_path / "x"))
    assert missing.returncode == 2 and f"{tmp_path / 'none.pt'}: file not found" in missing.stderr

    other_mask = _cli("predict", "--settings", json.dumps({"moving_mask": "nnunet_cect"}),
                      *model, *_predict_args(one, ncects, tmp_path / "x"))
    assert other_mask.returncode == 2 and "nnunet_cect" in other_mask.stderr
    assert "--moving-masks" in other_mask.stderr

    unaligned = _cli("predict", *model, *_predict_args(test, ncects, tmp_path / "x"),
                     "--warped", warped[0])
    assert unaligned.returncode == 2 and "--warped: 1" in unaligned.stderr
    assert "Traceback" not in unaligned.stderr


def test_predict_with_cect_segmentations_as_moving_masks(tmp_path, pairs_dir):
    """moving_mask names a method: its CECT livers (any geometry) replace moving_liver."""
    from regsegnet.data import PairFiles, read_pair
    from regsegnet.predict import PairJob, predict_pairs

    settings = Settings.from_mapping({**TINY, "cascades": 1, "iterations": 1, "epochs": 1})
    train(settings, [pairs_dir / "A__A"], [pairs_dir / "B__B"], tmp_path / "m", progress=False,
          log=lambda m: None)
    folder = pairs_dir / "A__B"
    files = PairFiles.in_folder(folder)
    segmentation = tmp_path / "seg" / "A.nii.gz"  # finer grid, in the CECT's own world frame
    annotated = read_pair("A__B", files)
    fine = sitk.Resample(read_image(files.moving_liver), grid((48, 48, 48), SPACING / 2),
                         sitk.Transform(), sitk.sitkNearestNeighbor)
    offset = (120.0, -30.0, 300.0)  # CECT world = nCECT world + offset (another scanner)
    fine.SetOrigin(offset)
    write_array(sitk.GetArrayFromImage(fine), fine, segmentation)
    job = PairJob("A__B", PairFiles(files.moving, files.moving_liver, files.fixed),
                  write_prealign(tmp_path / "prealign.tfm", offset), tmp_path / "ncect.nii.gz",
                  tmp_path / "pred.nii.gz", tmp_path / "rt.json", moving_mask=segmentation)
    write_array(np.zeros((24, 24, 24), np.int16), grid((24, 24, 24)), job.original_ncect)
    with pytest.raises(InputError, match="--moving-masks given, but regsegnet.moving_mask"):
        predict_pairs(tmp_path / "m" / "model.pt", [job], log=lambda m: None)
    records = predict_pairs(tmp_path / "m" / "model.pt", [job], moving_mask="nnunet_cect",
                            log=lambda m: None)
    assert records[0].extra["moving_mask"] == "nnunet_cect"
    carried = read_pair("A__B", job.files, moving_mask_path=segmentation,
                        prealign=sitk.ReadTransform(str(job.prealign)))
    np.testing.assert_array_equal(carried.moving_mask, annotated.moving_mask)
    assert carried.fixed_mask is None  # the nCECT liver is never read at prediction


def test_field_smoothing_is_a_gaussian_with_replicated_edges():
    """The matrix form of the smoothing gives scipy's Gaussian of the same radius, edges
    replicated ('nearest'), on a field of uneven shape."""
    from scipy import ndimage

    from regsegnet.model import gaussian_smoothing

    sigma = 2.5
    field = torch.randn(1, 3, 9, 14, 11, dtype=torch.float64)
    smoothed = gaussian_smoothing(field, sigma).numpy()
    for channel in range(3):
        expected = ndimage.gaussian_filter(field[0, channel].numpy(), sigma, mode="nearest",
                                           truncate=round(2 * sigma) / sigma)
        np.testing.assert_allclose(smoothed[0, channel], expected, atol=1e-10)


def test_a_prediction_may_skip_the_last_warp():
    torch.manual_seed(0)
    model = RegSegNet(cascades=2, channels=(4, 8, 8)).eval()
    moving, fixed = torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        full = model(moving, fixed)
        fast = model(moving, fixed, warp_last=False)
    assert fast.warped is None and torch.equal(full.field, fast.field)
