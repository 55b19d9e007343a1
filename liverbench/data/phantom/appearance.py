"""What each tissue looks like: Hounsfield units per phase and 99mTc-MAA uptake.

Values are drawn per patient around published ranges (portal-venous CECT: liver ~110 HU,
portal vein ~170 HU; unenhanced CT: liver ~55 HU, within ~10 HU of spleen, muscle and
blood), with the constraints that make the benchmark's problem real enforced by
construction: in CECT the liver stands >= 45 HU above muscle, in nCECT it sits within
15 HU of spleen, muscle and blood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liverbench.data.phantom.anatomy import MAX_TUMOURS, Anatomy, Label

N_LABELS = 256
BLOOD = (Label.IVC, Label.AORTA, Label.PORTAL_VEIN, Label.PORTAL_BRANCH, Label.HEPATIC_VEIN)


@dataclass(frozen=True)
class Appearance:
    """Per-label lookup tables (index = label) for one patient."""

    hu: np.ndarray  # mean HU
    texture: np.ndarray  # SD of the tissue's own texture (HU), before scanner noise

    def render(self, labels: np.ndarray, field: np.ndarray) -> np.ndarray:
        """HU of a label volume with the tissue texture `field` (unit SD) mixed in."""
        return self.hu[labels] + self.texture[labels] * field


def _table(values: dict[int, tuple[float, float]]) -> Appearance:
    hu = np.full(N_LABELS, -1000.0, np.float32)
    texture = np.zeros(N_LABELS, np.float32)
    for label, (mean, sd) in values.items():
        hu[int(label)], texture[int(label)] = mean, sd
    return Appearance(hu, texture)


def _common(rng: np.random.Generator) -> dict[int, tuple[float, float]]:
    """Tissues that do not enhance: fat, air, bone, fluid."""
    u = rng.uniform
    fat = u(-110.0, -90.0)
    return {
        Label.AIR: (-1000.0, 0.0),
        Label.FAT: (fat, 8.0),
        Label.VISCERAL_FAT: (fat + 5.0, 12.0),
        Label.GALLBLADDER: (u(0.0, 15.0), 3.0),
        Label.STOMACH_FLUID: (u(5.0, 20.0), 4.0),
        Label.GAS: (-990.0, 5.0),
        Label.BONE_CORTEX: (u(650.0, 800.0), 60.0),
        Label.BONE_MARROW: (u(180.0, 260.0), 30.0),
        Label.RIB: (u(400.0, 550.0), 40.0),
        Label.CARTILAGE: (u(100.0, 160.0), 15.0),
        Label.DISC: (u(75.0, 95.0), 8.0),
        Label.CSF: (u(5.0, 15.0), 4.0),
    }


def portal_venous(rng: np.random.Generator, anatomy: Anatomy) -> Appearance:
    """Diagnostic CECT, portal-venous phase."""
    u = rng.uniform
    muscle = u(50.0, 62.0)
    liver = u(max(105.0, muscle + 45.0), 128.0)
    aorta = u(160.0, 200.0)
    values = _common(rng) | {
        Label.MUSCLE: (muscle, 5.0),
        Label.LUNG: (u(-870.0, -840.0), 25.0),
        Label.LIVER: (liver, 4.0),
        Label.PORTAL_BRANCH: (u(165.0, 200.0), 5.0),
        Label.PORTAL_VEIN: (u(165.0, 200.0), 5.0),
        Label.HEPATIC_VEIN: (u(145.0, 175.0), 5.0),
        Label.IVC: (u(140.0, 175.0), 8.0),
        Label.AORTA: (aorta, 5.0),
        Label.HEART_BLOOD: (aorta - u(0.0, 15.0), 6.0),
        Label.MYOCARDIUM: (u(95.0, 115.0), 6.0),
        Label.SPLEEN: (u(110.0, 130.0), 4.0),
        Label.KIDNEY_CORTEX: (u(160.0, 190.0), 6.0),
        Label.KIDNEY_MEDULLA: (u(130.0, 160.0), 6.0),
        Label.STOMACH_WALL: (u(80.0, 100.0), 6.0),
        Label.BOWEL: (u(40.0, 70.0), 25.0),
        Label.PANCREAS: (u(90.0, 110.0), 6.0),
    }
    for k, tumour in enumerate(anatomy.tumours[:MAX_TUMOURS]):
        if tumour.rim_mm > 0:  # necrotic core, enhancing rim
            values[Label.TUMOUR + k] = (u(35.0, 60.0), 6.0)
            values[Label.RIM + k] = (u(115.0, 145.0), 6.0)
        else:  # hypodense
            values[Label.TUMOUR + k] = (u(60.0, 80.0), 6.0)
    return _table(values)


def unenhanced(rng: np.random.Generator, anatomy: Anatomy) -> Appearance:
    """Low-dose non-contrast CT of the SPECT-CT: liver, spleen, muscle, blood nearly iso-dense."""
    u = rng.uniform
    liver = u(48.0, 60.0)
    blood = float(np.clip(liver - u(4.0, 10.0), 38.0, 50.0))
    muscle = liver - u(-2.0, 8.0)
    values = _common(rng) | {
        Label.MUSCLE: (muscle, 5.0),
        Label.LUNG: (u(-840.0, -800.0), 25.0),  # free breathing: less air than breath-hold
        Label.LIVER: (liver, 4.0),
        Label.SPLEEN: (liver - u(2.0, 10.0), 4.0),
        Label.MYOCARDIUM: (muscle, 5.0),
        Label.KIDNEY_CORTEX: (u(28.0, 36.0), 5.0),
        Label.KIDNEY_MEDULLA: (u(25.0, 33.0), 5.0),
        Label.STOMACH_WALL: (u(35.0, 45.0), 5.0),
        Label.BOWEL: (u(20.0, 40.0), 20.0),
        Label.PANCREAS: (u(35.0, 45.0), 6.0),
    }
    for label in BLOOD + (Label.HEART_BLOOD,):
        values[label] = (blood + u(-2.0, 2.0), 4.0)
    for k, _ in enumerate(anatomy.tumours[:MAX_TUMOURS]):
        tumour = u(35.0, 45.0)
        values[Label.TUMOUR + k] = (tumour, 5.0)
        values[Label.RIM + k] = (tumour + u(0.0, 5.0), 5.0)
    return _table(values)


def maa_uptake(rng: np.random.Generator, anatomy: Anatomy) -> np.ndarray:
    """Relative 99mTc-MAA concentration per label (normal liver = 1), lungs excluded.

    Particles lodge in the arterial bed: tumours take 3-8x the normal liver (necrotic cores
    less), the rest of the body only free pertechnetate and the odd particle.
    """
    u = rng.uniform
    uptake = np.zeros(N_LABELS, np.float32)
    background = u(0.01, 0.03)
    for label in Label:
        uptake[label] = background
    uptake[Label.AIR] = uptake[Label.GAS] = 0.0
    uptake[Label.LIVER] = 1.0
    uptake[[Label.PORTAL_BRANCH, Label.HEPATIC_VEIN]] = 0.3
    uptake[[Label.IVC, Label.AORTA, Label.HEART_BLOOD, Label.PORTAL_VEIN]] = u(0.03, 0.08)
    uptake[Label.STOMACH_WALL] = u(0.1, 0.5)  # free pertechnetate
    uptake[[Label.KIDNEY_CORTEX, Label.KIDNEY_MEDULLA]] = u(0.1, 0.3)
    uptake[Label.SPLEEN] = u(0.03, 0.1)
    uptake[Label.LUNG] = 0.0  # set from the lung shunt fraction by the caller
    for k, tumour in enumerate(anatomy.tumours[:MAX_TUMOURS]):
        ratio = u(3.0, 8.0)
        uptake[Label.TUMOUR + k] = ratio if tumour.rim_mm == 0 else u(0.3, 1.0)
        uptake[Label.RIM + k] = ratio
    return uptake
