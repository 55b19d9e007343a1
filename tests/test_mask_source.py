"""The mask source as a design factor: another CECT liver carried through a method's mapping
(`python -m baselines.carry`), and the registration × mask source table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from baselines.carry import main
from liverbench.data.io import write_transform
from liverbench.evaluation.mask_source import mask_source_block, mask_source_values
from liverbench.methods import MASK_SOURCE_ROWS, registry
from liverbench.runtime import RuntimeRecord, Stages, record_failure


def _mask(origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    array = np.zeros((10, 20, 20), np.uint8)
    array[3:7, 5:15, 4:12] = 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 4.0))
    image.SetOrigin(origin)
    return image


def test_carry_moves_the_other_mask_by_the_mapping_and_adds_its_segmentation_time(tmp_path):
    liver, ncect = _mask(), sitk.Cast(_mask() * 100, sitk.sitkInt16)
    sitk.WriteImage(liver, str(tmp_path / "cnn_liver.nii.gz"))
    sitk.WriteImage(ncect, str(tmp_path / "ncect.nii.gz"))
    write_transform(sitk.TranslationTransform(3, (4.0, 0.0, 0.0)), tmp_path / "map.h5")
    RuntimeRecord.from_stages("regsegnet", "A__A", Stages({"pair.prealign": 1.5,
                                                           "network": 0.5}),
                              ["network"]).write(tmp_path / "source.json")
    RuntimeRecord.from_stages("nnunet_cect", "A__A", Stages({"read": 1.0, "network": 3.0}),
                              ["network"]).write(tmp_path / "extra.json")
    record_failure("regsegnet", "B__B", "empty moving liver", ncect, tmp_path / "x.nii.gz",
                   tmp_path / "failed.json")
    argv = ["--method", "regsegnet_cnnmask", "--pairs", "A__A", "B__B",
            "--cect-liver", *[str(tmp_path / "cnn_liver.nii.gz")] * 2,
            "--ncect", *[str(tmp_path / "ncect.nii.gz")] * 2,
            "--mappings", *[str(tmp_path / "map.h5")] * 2,
            "--source-runtimes", str(tmp_path / "source.json"), str(tmp_path / "failed.json"),
            "--extra-runtimes", *[str(tmp_path / "extra.json")] * 2,
            "--predictions", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"),
            "--runtimes", str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert main(argv) == 0
    carried = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a.nii.gz")))
    # nCECT point p maps to CECT point p + 4 mm in x: the liver appears 2 voxels lower in x
    assert np.array_equal(np.flatnonzero(carried.any(axis=(0, 1))), np.arange(2, 10))
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["seconds_core"] == pytest.approx(3.5)  # both networks
    stages = record["stages"]  # the source's, the CECT segmentation's, the carry
    assert set(stages) == {"pair.prealign", "network", "cect_mask.read", "cect_mask.network",
                           "carry"}
    assert record["core_stages"] == ["network", "cect_mask.network"]
    assert record["seconds_case"] == pytest.approx(6.0 + stages["carry"], abs=1e-3)
    assert record["extra"]["mapping_of"] == "regsegnet"
    failed = json.loads((tmp_path / "b.json").read_text())
    assert failed["status"] == "failed" and "empty moving liver" in failed["reason"]


def test_every_registration_row_has_its_other_mask_row():
    methods = registry({})
    for row in MASK_SOURCE_ROWS:
        source = methods[row.carries]
        assert row.mapping and source.mapping and row.cect_mask != source.cect_mask
        assert row.mapping_owner == source.id
    assert methods["elastix_cnn"].cect_mask == "nnunet"  # Luu et al.: nnU-Net's CECT liver


def test_mask_source_table_puts_both_masks_of_a_registration_side_by_side():
    frame = pd.DataFrame({
        "method": ["elastix", "elastix", "elastix_cnn", "elastix_cnn", "rigid", "rigid"],
        "status": ["ok", "ok", "ok", "failed", "ok", "missing"],
        "dsc": [0.96, 0.98, 0.88, 0.0, 0.9, np.nan],
    })
    sources = {"elastix": {"registration": "Elastix", "mask": "annotation"},
               "elastix_cnn": {"registration": "Elastix", "mask": "nnunet"},
               "rigid": {"registration": "Rigid", "mask": "annotation"}}
    values = mask_source_values(frame, sources).set_index("method")
    assert values.loc["elastix_cnn", "dsc_mean"] == pytest.approx(0.44)  # the failure: DSC 0
    assert values.loc["rigid", "n"] == 1
    block = mask_source_block(values.reset_index())
    table = block.frame.set_index("Registration")
    assert table.loc["Elastix", "annotated CECT liver"] == "0.97 ± 0.01"
    assert table.loc["Rigid", "nnU-Net CECT liver"] == "–"


def test_table1_notes_say_which_cect_liver_each_row_carried(tmp_path):
    from test_tables import CONFIG, method_frame

    from liverbench.evaluation.tables import write_tables

    paths = []
    for name, seed in (("regsegnet", 1), ("elastix_cnn", 2)):
        paths.append(tmp_path / f"{name}.csv")
        method_frame(name, seed).to_csv(paths[-1], index=False)
    sources = {"regsegnet": {"registration": "RegSegNet", "mask": "annotation"},
               "elastix_cnn": {"registration": "Elastix", "mask": "nnunet"}}
    write_tables(paths, {**CONFIG, "mask_sources": sources}, tmp_path / "out")
    md = (tmp_path / "out" / "table1.md").read_text()
    assert ("CECT liver carried: the annotated CECT liver by RegSegNet; nnU-Net's CECT "
            "segmentation by Elastix + CNN.") in md
