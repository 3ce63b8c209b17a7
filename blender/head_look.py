"""How a head this extension adds looks: its neck opening closed, and one material per face region
(skin, lips, eyes, iris, teeth, mouth) when it is the project's own head.

Only for objects we create (session.add_head, the corpus preview's scene); user objects are never
changed here. Vertices are never added or moved: the model animates the mesh per vertex.
"""

from __future__ import annotations

import bmesh
import bpy
import numpy as np

from ..core.template_head import TemplateHead, load_template_head

REGION_COLOURS = {  # linear RGB base colours of core/template_head.py REGION_NAMES
    "skin": (0.62, 0.38, 0.28),
    "lips": (0.55, 0.20, 0.18),
    "eyes": (0.80, 0.80, 0.78),
    "iris": (0.05, 0.09, 0.13),
    "teeth": (0.80, 0.77, 0.68),
    "mouth": (0.06, 0.01, 0.01),
}
# A material we made carries this custom property (its region), so a second head reuses it.
REGION_PROPERTY = "talking_head_region"


def project_head(n_vertices: int, faces: np.ndarray) -> TemplateHead | None:
    """The project's head (core/assets/head.ply) when `faces` (F, 3) are its triangles, else None."""
    head = load_template_head()
    if n_vertices != len(head.vertices) or not np.array_equal(np.asarray(faces), head.faces):
        return None
    return head


def project_head_of(mesh: bpy.types.Mesh) -> TemplateHead | None:
    """The project's head when `mesh` has its vertices and starts with its triangles (a closed neck
    adds faces after them), else None."""
    head = load_template_head()
    if len(mesh.vertices) != len(head.vertices) or len(mesh.loops) < head.faces.size:
        return None
    loops = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    return head if np.array_equal(loops[: head.faces.size], head.faces.ravel()) else None


def dress_head(obj: bpy.types.Object, faces: np.ndarray) -> None:
    """Close the neck and give each face region its material, on a head object we just created from
    `faces` (F, 3). A mesh of another topology gets one skin material."""
    head = project_head(len(obj.data.vertices), faces)
    if head is None:
        set_region_materials(obj.data, np.zeros(len(obj.data.vertices), np.int64), ("skin",))
        return
    close_neck(obj.data)
    set_region_materials(obj.data, head.vertex_region, head.region_names)


def boundary_loops(mesh: bpy.types.Mesh) -> list[np.ndarray]:
    """Vertex indices of each open boundary of `mesh` (edges with one face), one array per loop."""
    bm = bmesh.new()
    try:
        bm.from_mesh(mesh)
        edges = [(e.verts[0].index, e.verts[1].index) for e in bm.edges if e.is_boundary]
    finally:
        bm.free()
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    loops, seen = [], set()
    for start in neighbours:
        if start in seen:
            continue
        loop, stack = [], [start]
        while stack:
            vertex = stack.pop()
            if vertex not in seen:
                seen.add(vertex)
                loop.append(vertex)
                stack += neighbours[vertex]
        loops.append(np.array(loop))
    return loops


def close_neck(mesh: bpy.types.Mesh, up: int = 1) -> int:
    """Fill the lowest open boundary (the neck; `up` is the mesh's up axis: 1 in template
    coordinates, 2 in Blender's) with triangles between its own vertices; no vertex is added or
    moved. Returns the number of faces added."""
    loops = boundary_loops(mesh)
    if not loops:
        return 0
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    heights = co.reshape(-1, 3)[:, up]
    neck = set(min(loops, key=lambda loop: heights[loop].mean()).tolist())
    bm = bmesh.new()
    try:
        bm.from_mesh(mesh)
        edges = [e for e in bm.edges if e.is_boundary and {v.index for v in e.verts} <= neck]
        filled = bmesh.ops.holes_fill(bm, edges=edges, sides=0)["faces"]
        added = bmesh.ops.triangulate(bm, faces=filled, quad_method="BEAUTY", ngon_method="BEAUTY")["faces"]
        for face in added:  # a flat cap behind sharp edges: the neck's own shading stays as it was
            face.smooth = False
        for edge in edges:
            edge.smooth = False
        bm.to_mesh(mesh)
    finally:
        bm.free()
    mesh.update()
    return len(added)


def region_material(name: str) -> bpy.types.Material:
    """Our material for a face region (made once, then reused by every head we add)."""
    for material in bpy.data.materials:
        if material.get(REGION_PROPERTY) == name and material.library is None:
            return material
    colour = (*REGION_COLOURS.get(name, REGION_COLOURS["skin"]), 1.0)
    material = bpy.data.materials.new(f"Talking Head {name}")
    material[REGION_PROPERTY] = name
    material.diffuse_color = colour  # the viewport's solid mode
    if material.node_tree is None and hasattr(material, "use_nodes"):  # Blender < 5
        material.use_nodes = True
    bsdf = material.node_tree.nodes.get("Principled BSDF") if material.node_tree else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = colour
        bsdf.inputs["Roughness"].default_value = {"eyes": 0.15, "iris": 0.15, "teeth": 0.3, "lips": 0.4}.get(name, 0.55)
    return material


def set_region_materials(mesh: bpy.types.Mesh, vertex_region: np.ndarray, names: tuple[str, ...]) -> None:
    """One material slot per region name; a face takes the highest region of its vertices (a face
    touching the lips is lips). `vertex_region` (V,) indexes `names`."""
    mesh.materials.clear()
    for name in names:
        mesh.materials.append(region_material(name))
    starts = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_start", starts)
    loops = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", loops)
    order = np.argsort(starts)  # reduceat needs increasing offsets
    face_region = np.empty(len(starts), dtype=np.int32)
    face_region[order] = np.maximum.reduceat(np.asarray(vertex_region)[loops], starts[order])
    mesh.polygons.foreach_set("material_index", face_region)
    mesh.update()
