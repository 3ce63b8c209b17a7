"""The template-shape cache: the same shapes as building them, a new key for any change, and
no harm when the cache is damaged, off or unwritable."""

from __future__ import annotations

import numpy as np
import pytest

from talking_head.core import shape_cache
from talking_head.core.arkit import template_arkit_shapes
from talking_head.core.template_head import load_template_head


@pytest.fixture()
def head():
    return load_template_head()


@pytest.fixture()
def counted(head):
    calls = []

    def build():
        calls.append(1)
        return template_arkit_shapes(head.vertices, head.faces)

    return build, calls


def test_second_call_reads_the_same_shapes(tmp_path, monkeypatch, head, counted):
    monkeypatch.setenv("TALKING_HEAD_CACHE", str(tmp_path))
    build, calls = counted
    first = shape_cache.cached_shapes(head.vertices, head.faces, None, build)
    second = shape_cache.cached_shapes(head.vertices, head.faces, None, build)
    assert len(calls) == 1 and len(list(tmp_path.glob("arkit-*.safetensors"))) == 1
    assert np.array_equal(first, second) and np.array_equal(second, template_arkit_shapes(head.vertices, head.faces))


def test_any_change_is_a_new_key(head):
    key = shape_cache.shapes_key(head.vertices, head.faces, None)
    moved = head.vertices.copy()
    moved[0, 0] += 1e-6
    assert shape_cache.shapes_key(moved, head.faces, None) != key
    assert shape_cache.shapes_key(head.vertices, head.faces[::-1], None) != key
    assert shape_cache.shapes_key(head.vertices, head.faces, {"nose_tip": 3}) != key
    assert shape_cache.shapes_key(head.vertices, head.faces, None) == key


def test_damaged_file_is_rebuilt(tmp_path, monkeypatch, head, counted):
    monkeypatch.setenv("TALKING_HEAD_CACHE", str(tmp_path))
    build, calls = counted
    path = tmp_path / f"arkit-{shape_cache.shapes_key(head.vertices, head.faces, None)}.safetensors"
    path.write_bytes(b"not a safetensors file")
    shapes = shape_cache.cached_shapes(head.vertices, head.faces, None, build)
    assert len(calls) == 1 and np.array_equal(shapes, template_arkit_shapes(head.vertices, head.faces))
    assert shape_cache.cached_shapes(head.vertices, head.faces, None, build) is not None and len(calls) == 1  # rewritten


def test_off_and_unwritable_still_build(tmp_path, monkeypatch, head, counted):
    build, calls = counted
    monkeypatch.setenv("TALKING_HEAD_CACHE", "off")
    shape_cache.cached_shapes(head.vertices, head.faces, None, build)
    shape_cache.cached_shapes(head.vertices, head.faces, None, build)
    assert len(calls) == 2
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    monkeypatch.setenv("TALKING_HEAD_CACHE", str(blocked / "cache"))  # a folder under a file: cannot be made
    shapes = shape_cache.cached_shapes(head.vertices, head.faces, None, build)
    assert len(calls) == 3 and shapes.shape == (52, len(head.vertices), 3)
