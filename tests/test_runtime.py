"""One timing scope for every method: stages add up to the case, the core is named stages."""

from __future__ import annotations

import json
import time

import pytest

from liverbench.errors import InputError
from liverbench.runtime import (
    RuntimeRecord,
    Stages,
    inherit_pair_step,
    read_record,
    read_stages,
    write_stages,
)


def test_stages_time_each_step_and_add_repeated_names():
    stages = Stages()
    with stages("network"):
        time.sleep(0.02)
    with stages("write"):
        pass
    stages.add("network", 1.0)
    assert stages.seconds["network"] >= 1.02 and list(stages.seconds) == ["network", "write"]
    assert stages.total() == pytest.approx(sum(stages.seconds.values()))
    with pytest.raises(KeyError, match="no stage registration"):
        stages.sum(["registration"])


def test_a_record_is_its_stages_case_all_core_named(tmp_path):
    stages = Stages({"read": 0.5, "network": 2.0, "write": 0.25})
    record = RuntimeRecord.from_stages("m", "A__A", stages, ["network"], threads=1)
    assert (record.seconds_core, record.seconds_case) == (2.0, 2.75)
    record.write(tmp_path / "r.json")
    written = read_record(tmp_path / "r.json")
    assert written["stages"] == {"read": 0.5, "network": 2.0, "write": 0.25}
    assert written["core_stages"] == ["network"]
    no_core = RuntimeRecord.from_stages("identity", "A__A", stages, [])
    assert no_core.seconds_core == 0 and no_core.seconds_case == 2.75


def test_the_pair_step_is_inherited_as_far_as_a_method_uses_it(tmp_path):
    path = tmp_path / "timing.json"
    write_stages(Stages({"read": 0.5, "prealign": 0.25, "working_grid": 0.125}), path)
    assert read_stages(path) == {"read": 0.5, "prealign": 0.25, "working_grid": 0.125}
    everything, elastix = Stages(), Stages()
    inherit_pair_step(everything, path)
    inherit_pair_step(elastix, path, used=("read", "prealign"))
    assert everything.total() == 0.875
    assert set(elastix.seconds) == {"pair.read", "pair.prealign"}


@pytest.mark.parametrize("text, message", [
    (None, "stage timing not found"),
    ("{broken", "not a stage timing"),
    (json.dumps({"stages": {"read": "fast"}}), "must map names to seconds"),
])
def test_a_bad_stage_timing_names_the_file(tmp_path, text, message):
    path = tmp_path / "timing.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=message) as error:
        read_stages(path)
    assert str(path) in str(error.value)
