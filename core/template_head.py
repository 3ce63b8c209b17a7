"""The project's demo head (core/assets/head.ply + head.json) as core sees it: mesh, landmarks, regions.

The training side builds and stores this head (training/corpus/head_mesh.py); core must not import
training, so it reads the stored files itself. Only what the face rig and the ARKit basis need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .mesh_io import read_mesh

ASSETS = Path(__file__).resolve().parent / "assets"
HEAD_MESH = ASSETS / "head.ply"
HEAD_INFO = ASSETS / "head.json"
# Regions of the demo head, in the order head.json's `regions` lists them.
REGION_NAMES = ("skin", "lips", "eyes", "iris", "teeth", "mouth")
# Regions that the rig moves only with the jaw (eyeballs, teeth, mouth cavity): `FaceRig(rigid=...)`.
RIGID_REGIONS = ("eyes", "iris", "teeth", "mouth")


@dataclass(frozen=True)
class TemplateHead:
    vertices: np.ndarray  # (V, 3) float32, rest pose
    faces: np.ndarray  # (F, 3) int32
    landmarks: dict[str, int]  # name -> vertex index (face_rig.LANDMARK_NAMES)
    vertex_region: np.ndarray  # (V,) int8 index into region_names
    region_names: tuple[str, ...]
    pivot: np.ndarray  # (3,) head rotation centre
    lip_vertices: np.ndarray  # (L,) indices for the lip metrics

    def region_mask(self, *names: str) -> np.ndarray:
        """(V,) bool: vertices in any of the named regions."""
        return np.isin(self.vertex_region, [self.region_names.index(n) for n in names])


@lru_cache(maxsize=1)
def load_template_head() -> TemplateHead:
    """The stored demo head; cached, so treat its arrays as read-only."""
    mesh = read_mesh(HEAD_MESH)
    info = json.loads(HEAD_INFO.read_text())
    runs = info["vertex_region_runs"]
    vertex_region = np.concatenate([np.full(n, value, np.int8) for value, n in runs])
    return TemplateHead(
        vertices=mesh.vertices,
        faces=mesh.faces,
        landmarks={k: int(v) for k, v in info["landmarks"].items()},
        vertex_region=vertex_region,
        region_names=tuple(info.get("regions", REGION_NAMES)),
        pivot=np.asarray(info["pivot"], np.float32),
        lip_vertices=np.asarray(info["lip_vertices"], np.int64),
    )
