"""The one mesh reader: the fast all-triangles PLY path reads what the general path reads."""

from __future__ import annotations

import numpy as np
from plyfile import PlyData, PlyElement

from talking_head.core import mesh_io
from talking_head.core.mesh_io import read_mesh, write_mesh


def _general(path):
    """What read_mesh gives without its fast path."""
    original = mesh_io._read_triangle_ply
    mesh_io._read_triangle_ply = lambda path: None
    try:
        return read_mesh(path)
    finally:
        mesh_io._read_triangle_ply = original


def test_triangle_ply_fast_path_equals_the_general_reader(tmp_path):
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(500, 3)).astype(np.float32)
    faces = rng.integers(0, 500, size=(900, 3)).astype(np.int32)
    path = tmp_path / "tri.ply"
    write_mesh(path, vertices, faces)
    assert mesh_io._read_triangle_ply(path) is not None  # the fast path took it
    fast, general = read_mesh(path), _general(path)
    np.testing.assert_array_equal(fast.vertices, general.vertices)
    np.testing.assert_array_equal(fast.faces, general.faces)
    assert fast.faces.dtype == np.int32 and fast.vertices.dtype == np.float32


def test_polygons_and_text_ply_take_the_general_path(tmp_path):
    vertex = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (2, 0, 0)], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    face = np.empty(2, dtype=[("vertex_indices", "O")])
    face["vertex_indices"] = [np.array([0, 1, 2, 3], "i4"), np.array([1, 4, 2], "i4")]
    for text in (False, True):
        path = tmp_path / f"mixed_{text}.ply"
        PlyData([PlyElement.describe(vertex, "vertex"), PlyElement.describe(face, "face")], text=text).write(str(path))
        assert mesh_io._read_triangle_ply(path) is None  # a quad among triangles: not all triangles
        mesh = read_mesh(path)
        np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])  # the quad fanned
