"""What the Blender side needs to know about a model bundle, without torch: its configuration,
template mesh and pivot, and where the bundled demo lives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .errors import BundleError

# The bundle that ships with the extension, when the zip carries one.
DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "weights" / "demo"
CONFIG = "config.json"
TEMPLATE = "template.ply"
PHONE_PROTOTYPES = "phone_prototypes.safetensors"  # core/phone_features.py


@dataclass
class BundleInfo:
    path: Path
    config: ModelConfig

    @property
    def n_vertices(self) -> int:
        return self.config.n_vertices

    @property
    def subjects(self) -> list[str]:
        return list(self.config.subjects)

    def template(self):
        """The template `Mesh` (vertices (V, 3), faces (F, 3))."""
        from .mesh_io import read_mesh

        return read_mesh(self.path / TEMPLATE)

    def pivot(self, template_vertices: np.ndarray) -> np.ndarray:
        """Head pivot P (3,) (core/config.py `head_pivot`)."""
        return self.config.head_pivot(template_vertices)


def demo_available() -> bool:
    return (DEMO_BUNDLE / CONFIG).is_file()


def read_bundle_info(path: str | Path) -> BundleInfo:
    """Read a bundle folder's config.json (cached by path and modification time)."""
    path = Path(path)
    config_path = path / CONFIG
    if not config_path.is_file():
        raise BundleError(f"not a model bundle (no {CONFIG}): {path}; choose a bundle folder in the panel")
    return _read_cached(str(path), config_path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _read_cached(path: str, mtime: int) -> BundleInfo:
    try:
        config = ModelConfig.load(Path(path) / CONFIG)
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {CONFIG} of model bundle {path}: {exc}") from None
    return BundleInfo(Path(path), config)
