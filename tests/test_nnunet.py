"""nnU-Net v2 for real, on a handful of tiny cases, through the project's CLI.

The route is the one the pipeline runs: raw datasets -> plans with the small extra
configuration -> MSD pretraining with the target's moved plans -> fine-tuning with the
pretrained weights -> prediction back in the original geometry. Each step is a separate
process, as in the pipeline (nnU-Net fixes its worker counts at import). Schedules are a few
iterations: the test checks the plumbing and the weight transfer, not segmentation quality.
"""

from __future__ import annotations

import ast
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
from conftest import run_snakemake

from baselines.nnunet import datasets, environment
from baselines.nnunet.plans import add_small_configuration, describe
from baselines.nnunet.settings import Settings, SmallNetwork
from liverbench.data.io import ImageError, same_geometry
from liverbench.errors import InputError

SETTINGS = {
    "configuration": "3d_tiny",
    "small_network": {"features": [4, 8, 16], "patch_size": [16, 32, 32],
                      "spacing": [6.0, 6.0, 6.0], "batch_size": 2},
    "pretrain": {"epochs": 1, "iterations_per_epoch": 3, "val_iterations": 1},
    "train": {"epochs": 1, "iterations_per_epoch": 3, "val_iterations": 1},
    "pretraining": {"cect": "cect", "ncect": None},
    "validate_after_training": True,
    "device": "cpu",
    "threads": 1,
}


def ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def write_case(folder: Path, seed: int, kinds=("cect", "ncect")) -> Path:
    """A tiny CT per kind: body, a liver of random position and size, noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for kind in kinds:
        shape, spacing = ((24, 40, 40), (5.0, 5.0, 6.0)) if kind == "cect" else \
            ((20, 36, 36), (5.5, 5.5, 7.0))
        z, y, x = shape
        body = ellipsoid(shape, (z / 2, y / 2, x / 2), (z, y * 0.42, x * 0.45))
        centre = (z / 2 + rng.uniform(-2, 2), y / 2 + rng.uniform(-3, 3), x * 0.4)
        liver = ellipsoid(shape, centre, (z * 0.3, y * 0.22, x * rng.uniform(0.18, 0.22))) & body
        ct = np.full(shape, -1000.0)
        ct[body], ct[liver] = 40.0, 110.0 if kind == "cect" else 60.0
        ct += rng.normal(0, 8, shape)
        image = sitk.GetImageFromArray(ct.astype(np.int16))
        image.SetSpacing(spacing)
        image.SetOrigin((-100.0, -100.0, -70.0))
        mask = sitk.GetImageFromArray(liver.astype(np.uint8))
        mask.CopyInformation(image)
        sitk.WriteImage(image, str(folder / f"{kind}.nii"))
        sitk.WriteImage(mask, str(folder / f"{kind}_liver.nii"))
    return folder


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "baselines.nnunet", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, \
        f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_pretrain_move_plans_finetune_predict(tmp_path: Path) -> None:
    import torch

    msd = [str(write_case(tmp_path / "msd" / f"liver_{i}", 100 + i, ("cect",))) for i in range(3)]
    cohort = [str(write_case(tmp_path / "h108" / f"P00{i}", i)) for i in range(4)]
    settings = json.dumps(SETTINGS)
    common = ("--settings", settings, "--threads", "1")
    cli("prepare", *common, "--root", "nn", "--msd-cases", *msd, "--train-cases", *cohort[:2],
        "--val-cases", cohort[2], "--targets", "cect", "--summary", "models/configuration.json",
        cwd=tmp_path)
    summary = json.loads((tmp_path / "models/configuration.json").read_text())
    chosen = summary["targets"]["cect"]["configuration"]
    assert chosen["inherits_from"] == "3d_fullres" and chosen["features_per_stage"] == [4, 8, 16]
    assert summary["targets"]["cect"]["pretrained_from"]["plans"] == "nnUNetPlans_CohortCECT"
    assert set(summary["targets"]) == {"cect"}

    cli("pretrain", *common, "--root", "nn", "--target", "cect", "--out", "models/pre.json",
        cwd=tmp_path)
    trained = cli("train", *common, "--root", "nn", "--target", "cect", "--pretrained",
                  "models/pre.json", "--out", "models/cect.json", cwd=tmp_path)
    # one line per epoch in the job's log, as every training rule writes it (README)
    assert re.search(r"nnunet Dataset502_CohortCECT epoch 1/1: train_loss -?\d+\.\d{4} "
                     r"val_loss .* \| ema_pseudo_dice .* \| \d+\.\d s", trained.stderr)
    pretrained = json.loads((tmp_path / "models/pre.json").read_text())
    finetuned = json.loads((tmp_path / "models/cect.json").read_text())
    assert pretrained["dataset"] == "Dataset501_MSDLiver"
    assert finetuned["pretrained_weights"] == pretrained["checkpoint"]
    assert finetuned["validation_dice"] is not None

    # The fine-tuned encoder started from the pretrained one: a few SGD steps move it a
    # little, while an independent initialisation would differ by ~sqrt(2) of its norm.
    load = lambda record: torch.load(tmp_path / record["checkpoint"], weights_only=False,  # noqa: E731
                                     map_location="cpu")["network_weights"]
    before, after = load(pretrained), load(finetuned)
    key = "encoder.stages.1.0.convs.0.conv.weight"
    change = float(torch.linalg.norm(after[key] - before[key]) / torch.linalg.norm(before[key]))
    assert change < 0.5, change

    # Same seed, a second preparation and pretraining elsewhere: the same weights, bit for bit
    # (issue #15: checkpoints differed between two smoke runs). Augmentation runs in the
    # training process (`augmentation_workers: 0`, the default), where the seeded random
    # streams decide every batch; with worker processes this fails.
    assert Settings.from_mapping(SETTINGS, section="nnunet").augmentation_workers == 0
    cli("prepare", *common, "--root", "again", "--msd-cases", *msd, "--train-cases",
        *cohort[:2], "--val-cases", cohort[2], "--targets", "cect", "--summary",
        "again/configuration.json", cwd=tmp_path)
    cli("pretrain", *common, "--root", "again", "--target", "cect", "--out", "again/pre.json",
        cwd=tmp_path)
    repeated = load(json.loads((tmp_path / "again/pre.json").read_text()))
    assert repeated.keys() == before.keys()
    for name in before:
        assert torch.equal(repeated[name], before[name]), name

    # Interrupted and rerun with the same settings: resumes, does not start over.
    cli("pretrain", *common, "--root", "nn", "--target", "cect", "--out", "models/pre2.json",
        cwd=tmp_path)
    assert json.loads((tmp_path / "models/pre2.json").read_text())["resumed"] is True

    cli("predict", *common, "--model", "models/cect.json", "--method", "nnunet_cect",
        "--pairs", "P003__P003", "--images", "h108/P003/cect.nii",
        "--predictions", "pred/P003__P003.nii.gz", "--runtimes", "rt/P003__P003.json",
        cwd=tmp_path)
    mask = sitk.ReadImage(str(tmp_path / "pred/P003__P003.nii.gz"))
    image = sitk.ReadImage(str(tmp_path / "h108/P003/cect.nii"))
    assert same_geometry(mask, image) and mask.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayViewFromImage(mask))) <= {0, 1}
    record = json.loads((tmp_path / "rt/P003__P003.json").read_text())
    assert record["method"] == "nnunet_cect" and record["seconds_core"] > 0
    assert record["extra"]["mirroring"] is False  # CPU default
    assert record["extra"]["image"] == "h108/P003/cect.nii"

    # Images linked into nnUNet_raw, not copied; the dataset names the experiment.
    images = tmp_path / "nn/raw/Dataset502_CohortCECT/imagesTr"
    link = images / "P000_0000.nii.gz"
    assert link.is_symlink() and link.resolve() == (tmp_path / "h108/P000/cect.nii").resolve()
    marker = json.loads((images.parent / datasets.MARKER).read_text())
    assert marker["experiment"] == str((tmp_path / "nn").resolve())
    assert finetuned["nnunet_folders"]["nnUNet_raw"].endswith("(pipeline)")

    # The same model brought as the user's own: imported, checked, segments alike.
    imported = {**SETTINGS, "pretrained_model": {"cect": finetuned["model_folder"]}}
    log = cli("import", "--settings", json.dumps(imported), "--root", "nn", "--target", "cect",
              "--out", "models/imported.json", "--losses", "models/imported.csv", cwd=tmp_path)
    assert "used instead of training" in log.stdout
    record = json.loads((tmp_path / "models/imported.json").read_text())
    assert record["imported"] is True and record["liver_labels"] == [1]
    assert len(record["checkpoint_blake2b"]) == 32
    cli("predict", *common, "--model", "models/imported.json", "--method", "nnunet_cect",
        "--pairs", "P003__P003", "--images", "h108/P003/cect.nii",
        "--predictions", "pred_imported/P003__P003.nii.gz", "--runtimes", "rt2/P003.json",
        cwd=tmp_path)
    again = sitk.ReadImage(str(tmp_path / "pred_imported/P003__P003.nii.gz"))
    assert np.array_equal(sitk.GetArrayViewFromImage(again), sitk.GetArrayViewFromImage(mask))
    check_pretrained_model_refusals(tmp_path / finetuned["model_folder"], tmp_path)


def check_pretrained_model_refusals(model: Path, tmp_path: Path) -> None:
    """What would fail silently with a model trained for something else is refused, named."""
    from baselines.nnunet.pretrained import PretrainedModelError, check_model
    from baselines.nnunet.settings import PretrainedModels

    with pytest.raises(PretrainedModelError, match=r"no label \['tumor'\] among its labels "
                                                    r"\['background', 'liver'\]"):
        check_model(model, PretrainedModels(liver_labels=("tumor",)))
    with pytest.raises(PretrainedModelError, match="fold_3/checkpoint_final.pth: checkpoint"):
        check_model(model, PretrainedModels(fold=3))
    for name, edit, problem in (
        ("dataset.json", lambda d: d.update(channel_names={"0": "T1", "1": "T2"}),
         "2 input channels"),
        ("plans.json", lambda d: d["configurations"]["3d_fullres"].update(
            normalization_schemes=["ZScoreNormalization"]), "not CTNormalization"),
    ):
        copy = tmp_path / "bad" / name / model.name
        shutil.copytree(model, copy)
        data = json.loads((copy / name).read_text())
        edit(data)
        (copy / name).write_text(json.dumps(data))
        with pytest.raises(PretrainedModelError, match=problem):
            check_model(copy, PretrainedModels())
    with pytest.raises(PretrainedModelError, match="not an nnU-Net model folder name"):
        check_model(model.parent, PretrainedModels())


def test_users_nnunet_folders_are_used_and_never_overwritten(tmp_path: Path) -> None:
    """nnUNet_raw/_preprocessed/_results set in the environment: the datasets go there (the
    log says so); a dataset id of the pipeline's that holds another dataset, or another
    experiment's, stops the run with the folder named."""
    msd = [str(write_case(tmp_path / "msd" / f"liver_{i}", 100 + i, ("cect",))) for i in range(3)]
    user = {name: str(tmp_path / "user" / name) for name in environment.FOLDER_VARIABLES}
    env = {**os.environ, **user}
    prepare = [sys.executable, "-m", "baselines.nnunet", "prepare", "--settings",
               json.dumps(SETTINGS), "--threads", "1", "--msd-cases", *msd, "--train-cases",
               *msd[:2], "--val-cases", msd[2], "--targets", "cect"]
    run = lambda root: subprocess.run(  # noqa: E731
        [*prepare, "--root", root, "--summary", f"{root}/summary.json"], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=600)
    first = run("first")
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"nnUNet_raw={user['nnUNet_raw']} (environment)" in first.stderr
    assert (Path(user["nnUNet_raw"]) / "Dataset501_MSDLiver" / "dataset.json").is_file()
    assert not (tmp_path / "first" / "raw").exists()
    summary = json.loads((tmp_path / "first/summary.json").read_text())
    assert summary["nnunet_folders"]["nnUNet_preprocessed"].endswith("(environment)")
    other = run("second")  # another experiment, the same folders
    assert other.returncode == 2 and "Dataset501_MSDLiver: written by" in other.stderr
    (Path(user["nnUNet_results"]) / "Dataset501_TheirLiver").mkdir()
    paths = {name: Path(path) for name, path in user.items()}
    with pytest.raises(InputError, match=r"holds dataset 501 \(Dataset501_TheirLiver\)"):
        datasets.check_owner(paths, str((tmp_path / "first").resolve()))


def test_small_configuration_follows_the_plans_axes() -> None:
    plans = {
        "plans_name": "nnUNetPlans",
        "transpose_forward": [2, 0, 1],
        "configurations": {"3d_fullres": {
            "spacing": [1.0, 1.0, 1.0], "patch_size": [128, 128, 128], "batch_size": 2,
            "architecture": {"network_class_name": "x.PlainConvUNet", "arch_kwargs": {
                "n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320],
                "kernel_sizes": [[3, 3, 3]] * 6, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
                "n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5}},
        }},
    }
    small = SmallNetwork(features=(8, 16, 32), patch_size=(32, 48, 64), spacing=(4.0, 5.0, 6.0))
    result = add_small_configuration(plans, "3d_small", small)
    assert plans["configurations"].keys() == {"3d_fullres"}  # input untouched
    facts = describe(result, "3d_small")
    assert facts["inherits_from"] == "3d_fullres"
    assert facts["stages"] == 3 and facts["features_per_stage"] == [8, 16, 32]
    assert facts["patch_size"] == [64, 32, 48] and facts["spacing"] == [6.0, 4.0, 5.0]
    kwargs = result["configurations"]["3d_small"]["architecture"]["arch_kwargs"]
    assert len(kwargs["strides"]) == len(kwargs["kernel_sizes"]) == 3
    assert len(kwargs["n_conv_per_stage_decoder"]) == 2


def test_settings_refuse_what_nnunet_cannot_train() -> None:
    from baselines.nnunet.settings import Settings

    with pytest.raises(ValueError, match=">= 3"):
        Settings.from_mapping({"small_network": {"features": [8, 16]}})
    with pytest.raises(ValueError, match="divisible by 4"):
        Settings.from_mapping({"small_network": {"features": [8, 16, 32],
                                                 "patch_size": [30, 32, 32]}})
    with pytest.raises(ValueError, match="train.epoch: unknown setting"):
        Settings.from_mapping({"train": {"epoch": 3}})
    with pytest.raises(ValueError, match="same network"):  # 3d_fullres: plans differ per target
        Settings.from_mapping({"configuration": "3d_fullres", "pretraining": {"ncect": "cect"}})


def test_partial_pretraining_trains_the_others_from_scratch() -> None:
    from baselines.nnunet.settings import Settings

    settings = Settings.from_mapping(SETTINGS, section="nnunet")
    assert settings.pretraining == {"cect": "cect", "ncect": None}
    partial = Settings.from_mapping({**SETTINGS, "pretraining": {"cect": "cect"}})
    assert partial == settings and partial.pretraining_sources() == ["cect"]
    assert Settings.from_mapping(settings.to_dict()) == settings
    assert Settings().gpu == 0 and Settings().pretraining_sources(["ncect"]) == ["ncect"]


def test_cli_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    """Bad input exits 2 with `prog command: file: problem`, before nnU-Net is loaded."""
    result = subprocess.run(
        [sys.executable, "-m", "baselines.nnunet", "predict", "--model", "missing.json",
         "--method", "nnunet_ncect", "--pairs", "P1__P1", "--images", "a.nii.gz",
         "--predictions", "p.nii.gz", "--runtimes", "r.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == ("python -m baselines.nnunet predict: missing.json: model record "
                             "not found (train the model first)\n")
    result = subprocess.run(
        [sys.executable, "-m", "baselines.nnunet", "predict", "--model", "m.json", "--method",
         "x", "--pairs", "P1__P1", "P2__P2", "--images", "a.nii.gz", "--predictions", "p.nii.gz",
         "--runtimes", "r.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--pairs: 2, --images: 1" in result.stderr


def test_raw_dataset_refuses_a_bad_case(tmp_path: Path) -> None:
    case = write_case(tmp_path / "P001", 0, ("cect",))
    (case / "cect_liver.nii").unlink()
    with pytest.raises(ImageError, match="cect_liver.nii: file not found"):
        datasets.write_raw_dataset(tmp_path / "raw", "cect",
                                   datasets.cases_from_folders([case], "cect"), "test")
    image = sitk.ReadImage(str(case / "cect.nii"))
    shifted = sitk.Image(image.GetSize(), sitk.sitkUInt8) + 1
    shifted.SetSpacing(image.GetSpacing())
    shifted.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(case / "cect_liver.nii"))
    with pytest.raises(ImageError, match="geometry"):
        datasets.write_raw_dataset(tmp_path / "raw", "cect",
                                   datasets.cases_from_folders([case], "cect"), "test")


def test_trainer_reads_the_variables_the_cli_sets() -> None:
    """The trainer module stays import-free of the project; its variable names must agree."""
    source = (environment.TRAINER_DIR / "nnunet_short_trainer.py").read_text()
    constants = {
        node.targets[0].id: node.value.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and isinstance(node.targets[0], ast.Name)
    }
    assert {constants["EPOCHS"], constants["ITERATIONS"], constants["VAL_ITERATIONS"]} == \
        set(environment.SCHEDULE_VARIABLES.values())
    assert "class nnUNetTrainerShort(nnUNetTrainer)" in source


def test_a_brought_model_replaces_training_in_the_dag(tmp_path: Path) -> None:
    """With both targets' models brought (nnunet.pretrained_model), the DAG imports them and
    runs no nnU-Net preparation, pretraining or training; with one, the other is trained."""
    model = tmp_path / "mine/Dataset003_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres"
    (model / "fold_0").mkdir(parents=True)
    for name in ("plans.json", "dataset.json", "fold_0/checkpoint_final.pth"):
        (model / name).write_text("{}")
    methods = "methods=[identity,elastix_cnn,nnunet_ncect]"
    jobs = {}
    for name, brought in (("both", f"{{cect: {model}, ncect: {model}}}"),
                          ("cect", f"{{cect: {model}}}")):
        result = run_snakemake(tmp_path, "--config", "scale=smoke", f"experiment={name}",
                               methods, f"nnunet={{pretrained_model: {brought}}}", "-n")
        assert result.returncode == 0, result.stderr[-3000:]
        jobs[name] = re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M)
    both, cect = dict(jobs["both"]), dict(jobs["cect"])
    assert both["nnunet_import"] == "2"
    assert not {"nnunet_prepare", "nnunet_pretrain", "nnunet_train"} & set(both)
    assert cect["nnunet_import"] == "1" and cect["nnunet_train"] == "1"
