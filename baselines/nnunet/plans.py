"""Edits of nnU-Net plans (plain dicts): the small extra configuration for CPU budgets.

nnU-Net plans support extra configurations that inherit from another one (`inherits_from`)
and override some keys; nnU-Net resolves them itself when it preprocesses, trains and
predicts. The small configuration inherits from `3d_fullres` and overrides spacing, patch,
batch size and the network's stages and features, nothing else. The override is shallow
(nnU-Net replaces whole top-level keys), so the architecture is copied and edited as a whole.
"""

from __future__ import annotations

import copy
from typing import Any

from baselines.nnunet.settings import FULLRES, SmallNetwork
from liverbench.errors import InputError


def to_plans_axes(values: tuple, plans: dict[str, Any]) -> list:
    """(z, y, x) values in nnU-Net's axis order: plans may transpose the axes so that the
    axis with the coarsest spacing comes first (`transpose_forward`)."""
    order = plans.get("transpose_forward", [0, 1, 2])
    return [values[axis] for axis in order]


def add_small_configuration(plans: dict[str, Any], name: str, network: SmallNetwork) -> dict:
    """Return a copy of `plans` with configuration `name` inheriting from 3d_fullres."""
    if name == FULLRES:
        raise InputError(f"the small configuration cannot be named {FULLRES!r}")
    configurations = plans.get("configurations", {})
    if FULLRES not in configurations:
        raise InputError(f"plans {plans.get('plans_name')!r} have no {FULLRES} configuration to "
                         f"inherit from (configurations: {sorted(configurations)})")
    network.validate_in("small_network")
    base = configurations[FULLRES]
    architecture = copy.deepcopy(base["architecture"])
    kwargs = architecture["arch_kwargs"]
    stages = len(network.features)
    kwargs["n_stages"] = stages
    kwargs["features_per_stage"] = list(network.features)
    kwargs["kernel_sizes"] = [[3, 3, 3] for _ in range(stages)]
    kwargs["strides"] = [[1, 1, 1]] + [[2, 2, 2] for _ in range(stages - 1)]
    blocks = "n_blocks_per_stage" if "n_blocks_per_stage" in kwargs else "n_conv_per_stage"
    kwargs[blocks] = [2] * stages
    kwargs["n_conv_per_stage_decoder"] = [2] * (stages - 1)
    result = copy.deepcopy(plans)
    result["configurations"][name] = {
        "inherits_from": FULLRES,
        "data_identifier": f"{plans['plans_name']}_{name}",
        "spacing": [float(s) for s in to_plans_axes(network.spacing, plans)],
        "patch_size": [int(p) for p in to_plans_axes(network.patch_size, plans)],
        "batch_size": int(network.batch_size),
        "architecture": architecture,
    }
    return result


def describe(plans: dict[str, Any], name: str) -> dict[str, Any]:
    """The facts of one configuration a report shows (after inheritance is resolved)."""
    configurations = plans["configurations"]
    resolved: dict[str, Any] = {}
    chain = [name]
    while "inherits_from" in configurations[chain[-1]]:
        chain.append(configurations[chain[-1]]["inherits_from"])
    for link in reversed(chain):
        resolved.update(configurations[link])
    kwargs = resolved["architecture"]["arch_kwargs"]
    return {
        "configuration": name,
        "inherits_from": configurations[name].get("inherits_from"),
        "network": resolved["architecture"]["network_class_name"].rsplit(".", 1)[-1],
        "stages": kwargs["n_stages"],
        "features_per_stage": kwargs["features_per_stage"],
        "spacing": resolved["spacing"],
        "patch_size": resolved["patch_size"],
        "batch_size": resolved["batch_size"],
        "transpose_forward": plans.get("transpose_forward"),
        "normalization": resolved.get("normalization_schemes"),
    }
