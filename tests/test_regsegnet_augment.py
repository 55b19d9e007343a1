"""RegSegNet's training augmentation (`regsegnet.augment`): it perturbs the moving CECT and its
liver, never the fixed nCECT or its liver, and the same seed gives the same perturbation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from synthetic_pairs import TINY, tensor, write_pairs

from regsegnet.augment import augment_batch, random_theta
from regsegnet.data import load_pair, make_batch
from regsegnet.settings import Augmentation, Settings
from regsegnet.train import Trainer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs"))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_augmentation_changes_the_moving_pair_and_never_the_fixed(pairs_dir):
    pair = load_pair(pairs_dir / "A__B")
    batch = make_batch([pair])
    augmentation = Settings().augmentation  # the defaults: on
    out = augment_batch(batch, augmentation, [pair.spacing], _generator(0))
    torch.testing.assert_close(out.fixed, tensor(pair.fixed), atol=0, rtol=0)
    torch.testing.assert_close(out.fixed_mask, tensor(pair.fixed_mask), atol=0, rtol=0)
    moved = (out.moving - tensor(pair.moving)).abs()
    assert float(moved.mean()) > 0.01
    assert float(out.moving.min()) >= 0 and float(out.moving.max()) <= 1
    mask_change = float((out.moving_mask - tensor(pair.moving_mask)).abs().sum())
    assert mask_change > 0.05 * pair.moving_mask.sum()  # the liver moved with its image
    volume = float(out.moving_mask.sum()) / pair.moving_mask.sum()
    assert 0.8 < volume < 1.2  # ±5 % per axis at most
    # through the trainer too (pair sampling, then augmentation): the fixed side is the data's
    trainer = Trainer(Settings.from_mapping({**TINY, "cascades": 1}), [pair], [pair])
    sampled = trainer.sample_batch()
    torch.testing.assert_close(sampled.fixed, tensor(pair.fixed), atol=0, rtol=0)
    assert not torch.equal(sampled.moving, tensor(pair.moving))
    off = Settings.from_mapping({**TINY, "cascades": 1, "augmentation": {"enabled": False}})
    assert torch.equal(Trainer(off, [pair], [pair]).sample_batch().moving, tensor(pair.moving))


def test_augmentation_is_reproducible_from_its_seed(pairs_dir):
    pair = load_pair(pairs_dir / "A__B")
    augmentation = Settings().augmentation
    first, again, other = (
        augment_batch(make_batch([pair]), augmentation, [pair.spacing], _generator(seed))
        for seed in (3, 3, 4)
    )
    assert torch.equal(first.moving, again.moving)
    assert torch.equal(first.moving_mask, again.moving_mask)
    assert not torch.equal(first.moving, other.moving)


def test_translation_alone_moves_the_moving_liver_by_at_most_the_range(pairs_dir):
    pair = load_pair(pairs_dir / "A__A")
    only = Augmentation(rotation_deg=0.0, scale=0.0, intensity_scale=0.0, intensity_shift=0.0,
                        noise_std=0.0, translation_voxels=3.0)
    shifts = []
    for seed in range(6):
        out = augment_batch(make_batch([pair]), only, [pair.spacing], _generator(seed))
        shifts.append(ndimage.center_of_mass(out.moving_mask[0, 0].numpy())
                      - np.array(ndimage.center_of_mass(pair.moving_mask)))
        torch.testing.assert_close(  # intensities untouched: only the geometry changed
            out.moving.mean(), tensor(pair.moving).mean(), atol=0.02, rtol=0)
    shifts = np.array(shifts)
    assert np.abs(shifts).max() <= 3.0 + 0.3
    assert (shifts > 0.5).any() and (shifts < -0.5).any()  # both directions


def test_rotation_is_rigid_in_millimetres_on_anisotropic_voxels():
    only = Augmentation(rotation_deg=20.0, scale=0.0, translation_voxels=0.0)
    shape, spacing = (16, 32, 24), (4.0, 1.5, 2.5)  # (z, y, x)
    theta = random_theta(only, shape, spacing, _generator(1)).double()
    half_mm = torch.tensor([(s - 1) / 2 * d for s, d in zip(reversed(shape), reversed(spacing))],
                           dtype=torch.float64)
    rotation = torch.diag(half_mm) @ theta[:, :3] @ torch.diag(1 / half_mm)
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    assert float(torch.linalg.det(rotation)) == pytest.approx(1.0, abs=1e-6)
    assert float(theta[:, 3].abs().max()) == 0.0
    assert not torch.allclose(rotation, torch.eye(3, dtype=torch.float64), atol=0.05)




def test_same_seed_same_weights(pairs_dir):
    pairs = [load_pair(pairs_dir / name) for name in ("A__B", "A__A")]
    settings = Settings.from_mapping({**TINY, "cascades": 1, "seed": 11})

    def weights_after_steps(settings):
        trainer = Trainer(settings, pairs, pairs[:1])
        for _ in range(3):
            trainer.train_step(0, trainer.sample_batch())
        return [p.detach().clone() for p in trainer.model.parameters()]

    first, again = weights_after_steps(settings), weights_after_steps(settings)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    # another augmentation stream (the model's initialisation and pair order kept): other weights
    trainer = Trainer(settings, pairs, pairs[:1])
    trainer.augment_generator.manual_seed(12345)
    for _ in range(3):
        trainer.train_step(0, trainer.sample_batch())
    assert not all(torch.equal(a, b.detach()) for a, b in zip(first, trainer.model.parameters()))
