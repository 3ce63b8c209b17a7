"""The project's own head: a procedural, human-looking face mesh built from a signed distance field.

The skin is a ray-cast shell: from a centre inside the head, one ray per (azimuth, elevation) grid
point finds the outermost zero crossing of a smooth union of ellipsoids (cranium, jaw, cheeks,
nose, lips, ...) minus the eye sockets. The grid row through the lip line is split between the
mouth corners, so the lips can part (a real mouth opening). Eyeballs, teeth and a dark mouth
cavity are separate components. Units follow the BIWI template (about 1 unit = 16 cm); x to the
face's left, y up, z forward (the face looks along +z).

`generate_head()` rebuilds it; the stored copy (`core/assets/head.ply` + `head.json`) is what the
corpus uses, read by `load_head()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[2] / "core" / "assets"
HEAD_MESH = ASSETS / "head.ply"
HEAD_INFO = ASSETS / "head.json"

RAY_CENTRE = np.array([0.0, -0.05, 0.0])
MOUTH_Y = -0.24  # height of the lip line at the front
REGION_NAMES = ("skin", "lips", "eyes", "iris", "teeth", "mouth")


@dataclass
class Head:
    """A face mesh with what the rig and the metrics need to know about it."""

    vertices: np.ndarray  # (V, 3) float32, rest pose
    faces: np.ndarray  # (F, 3) int32
    pivot: np.ndarray  # (3,) head rotation centre (top of the neck)
    landmarks: dict[str, int]  # name -> vertex index (see rig.LANDMARK_NAMES)
    lip_vertices: np.ndarray  # (L,) indices for lip metrics (like BIWI lve.txt)
    upper_face_vertices: np.ndarray  # (U,) indices for upper-face metrics (like BIWI fdd.txt)
    vertex_region: np.ndarray = field(default=None)  # (V,) int8 index into REGION_NAMES, for rendering


# --- signed distance field -----------------------------------------------------------------------

def _ellipsoid(p: np.ndarray, centre, radii) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipsoid. p: (..., 3)."""
    q = (p - np.asarray(centre)) / np.asarray(radii)
    return (np.linalg.norm(q, axis=-1) - 1.0) * float(np.min(radii))


def _capsule(p: np.ndarray, a, b, radius_a: float, radius_b: float) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    closest = a + t[..., None] * ab
    return np.linalg.norm(p - closest, axis=-1) - (radius_a + (radius_b - radius_a) * t)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (smooth union); k is the blend width."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return -_smin(-a, -b, k)


def _mirror(p: np.ndarray) -> np.ndarray:
    q = p.copy()
    q[..., 0] = np.abs(q[..., 0])
    return q


def head_sdf(p: np.ndarray, shape: dict | None = None) -> np.ndarray:
    """Signed distance (negative inside) of the head for points p (..., 3)."""
    s = {"nose": 1.0, "jaw": 1.0, "cheek": 1.0, "brow": 1.0, "lips": 1.0, **(shape or {})}
    m = _mirror(p)
    d = _ellipsoid(p, (0, 0.16, -0.10), (0.40, 0.50, 0.52))  # cranium
    d = _smin(d, _ellipsoid(p, (0, -0.02, 0.06), (0.37, 0.40, 0.36)), 0.10)  # mid face
    d = _smin(d, _ellipsoid(p, (0, -0.24, 0.03), (0.29 * s["jaw"], 0.24, 0.34)), 0.12)  # jaw
    d = _smin(d, _ellipsoid(p, (0, -0.39, 0.28), (0.12 * s["jaw"], 0.075, 0.085)), 0.08)  # chin
    d = _smin(d, _capsule(p, (0, -1.15, -0.10), (0, -0.30, -0.10), 0.22, 0.22), 0.12)  # neck
    d = _smin(d, _ellipsoid(m, (0.19, -0.06, 0.24), (0.12, 0.11, 0.11 * s["cheek"])), 0.08)  # cheeks
    d = _smin(d, _ellipsoid(m, (0.13, 0.205, 0.305), (0.14, 0.05, 0.07 * s["brow"])), 0.07)  # brow ridge
    d = _smin(d, _ellipsoid(p, (0, -0.22, 0.33), (0.18, 0.13, 0.13)), 0.08)  # muzzle (around the mouth)
    d = _smin(d, _ellipsoid(m, (0.39, 0.02, -0.08), (0.05, 0.13, 0.08)), 0.04)  # ears
    nose = _capsule(p, (0, 0.15, 0.38), (0, -0.05, 0.36 + 0.17 * s["nose"]), 0.035, 0.045)
    nose = _smin(nose, _ellipsoid(p, (0, -0.065, 0.355 + 0.16 * s["nose"]), (0.05, 0.048, 0.05)), 0.03)
    nose = _smin(nose, _ellipsoid(m, (0.055, -0.09, 0.43), (0.042, 0.035, 0.04)), 0.03)  # alae
    d = _smin(d, nose, 0.05)
    lips = np.minimum(
        _ellipsoid(p, (0, -0.212, 0.43), (0.115, 0.032 * s["lips"], 0.055)),  # upper lip
        _ellipsoid(p, (0, -0.268, 0.425), (0.105, 0.034 * s["lips"], 0.055)),  # lower lip
    )
    d = _smin(d, lips, 0.035)
    d = _smax(d, -_ellipsoid(m, (0.155, 0.085, 0.38), (0.075, 0.036, 0.07)), 0.03)  # eye sockets
    return d


def lip_sdf(p: np.ndarray) -> np.ndarray:
    return np.minimum(
        _ellipsoid(p, (0, -0.212, 0.43), (0.125, 0.04, 0.065)),
        _ellipsoid(p, (0, -0.268, 0.425), (0.115, 0.042, 0.065)),
    )


# --- mesh ----------------------------------------------------------------------------------------

def _warp(u: np.ndarray, density: float) -> np.ndarray:
    """Map [-1, 1] onto itself with `density` times more samples around 0 than on average."""
    w = 1.0 / density
    return u * (w + (1.0 - w) * u * u)


def _cast(directions: np.ndarray, shape: dict | None, r_max: float = 1.6, steps: int = 160) -> np.ndarray:
    """Outermost surface radius along each ray from RAY_CENTRE. directions: (R, 3) unit."""
    radii = np.linspace(r_max, 0.02, steps)
    points = RAY_CENTRE + directions[:, None, :] * radii[None, :, None]
    inside = head_sdf(points, shape) < 0
    first = np.argmax(inside, axis=1)  # first step (from outside) that is inside
    hi = radii[np.maximum(first - 1, 0)]
    lo = radii[first]
    for _ in range(25):  # bisection between the last outside and the first inside sample
        mid = 0.5 * (hi + lo)
        inside_mid = head_sdf(RAY_CENTRE + directions * mid[:, None], shape) < 0
        lo = np.where(inside_mid, mid, lo)
        hi = np.where(inside_mid, hi, mid)
    return 0.5 * (hi + lo)


def _uv_sphere(centre, radius: float, rings: int, segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sphere with its pole on +z. Returns vertices, faces and the polar angle of each vertex."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, f = np.meshgrid(theta, phi, indexing="ij")
    xyz = np.stack([np.sin(t) * np.cos(f), np.sin(t) * np.sin(f), np.cos(t)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 0, 1]], xyz, [[0, 0, -1]]]) * radius + np.asarray(centre)
    polar = np.concatenate([[0.0], t.ravel(), [np.pi]])
    faces = []
    idx = lambda i, j: 1 + i * segments + (j % segments)  # noqa: E731
    for j in range(segments):
        faces.append((0, idx(0, j), idx(0, j + 1)))
        faces.append((len(verts) - 1, idx(rings - 2, j + 1), idx(rings - 2, j)))
    for i in range(rings - 2):
        for j in range(segments):
            faces.append((idx(i, j), idx(i + 1, j), idx(i + 1, j + 1)))
            faces.append((idx(i, j), idx(i + 1, j + 1), idx(i, j + 1)))
    return verts, np.asarray(faces), polar


def _arc_strip(y_top: float, y_bottom: float, radius: float, z_centre: float, half_angle: float, columns: int):
    angles = np.linspace(-half_angle, half_angle, columns)
    ring = np.stack([radius * np.sin(angles), np.zeros_like(angles), z_centre + radius * np.cos(angles)], -1)
    top = ring + [0, y_top, 0]
    bottom = ring + [0, y_bottom, 0]
    verts = np.concatenate([top, bottom])
    faces = []
    for k in range(columns - 1):
        faces.append((k, columns + k, columns + k + 1))
        faces.append((k, columns + k + 1, k + 1))
    return verts, np.asarray(faces)


def generate_head(columns: int = 64, rows: int = 36, shape: dict | None = None) -> Head:
    """Build the head: skin shell with a split lip line, eyeballs, teeth and mouth cavity."""
    # Columns: azimuth, denser at the front. Rows: elevation from the top down, denser near the
    # mouth; row `mouth_row` lies exactly on the lip line (METHOD.md section 11 needs real lips).
    azimuth = np.pi * _warp(np.linspace(-1, 1, columns, endpoint=False), 2.6)
    mouth_elevation = np.arctan2(MOUTH_Y - RAY_CENTRE[1], 0.475)
    top, bottom = np.radians(88.0), np.radians(-80.0)
    span = max(top - mouth_elevation, mouth_elevation - bottom)
    v = np.linspace(-1, 1, 2 * rows + 1)
    elevation = mouth_elevation + span * _warp(v, 2.4)
    elevation = elevation[(elevation <= top) & (elevation >= bottom)][::-1]  # top first
    mouth_row = int(np.argmin(np.abs(elevation - mouth_elevation)))
    elevation[mouth_row] = mouth_elevation

    a, e = np.meshgrid(azimuth, elevation)  # (rows, columns)
    directions = np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], -1).reshape(-1, 3)
    radius = _cast(directions, shape)
    skin = RAY_CENTRE + directions * radius[:, None]
    n_rows, n_cols = e.shape
    grid = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)

    # Split the lip line: columns strictly between the corners get a second (lower-lip) copy.
    corner_azimuth = np.arctan2(0.105, 0.43)
    inside = np.where(np.abs(azimuth) < corner_azimuth)[0]
    lower_lip = np.arange(len(inside)) + n_rows * n_cols
    skin = np.concatenate([skin, skin[grid[mouth_row, inside]]])
    lower_index = grid[mouth_row].copy()
    lower_index[inside] = lower_lip

    faces = []
    for i in range(n_rows - 1):
        upper_row = grid[i]
        lower_row = lower_index if i == mouth_row else grid[i + 1]
        below = grid[i + 1]
        for j in range(n_cols):
            k = (j + 1) % n_cols
            a0, a1 = upper_row[j], upper_row[k]
            if i == mouth_row:
                a0, a1 = lower_row[j], lower_row[k]
            b0, b1 = below[j], below[k]
            faces.append((a0, b0, b1))
            faces.append((a0, b1, a1))
    # Close the crown with a fan around one pole vertex.
    crown = len(skin)
    skin = np.concatenate([skin, RAY_CENTRE + np.array([[0, 1, 0]]) * _cast(np.array([[0.0, 1.0, 0.0]]), shape)[:, None]])
    for j in range(n_cols):
        faces.append((crown, grid[0][(j + 1) % n_cols], grid[0][j]))
    skin_faces = np.asarray(faces)
    # Faces must point outwards: check one on the forehead and flip all if needed.
    tri = skin[skin_faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centres = tri.mean(1)
    if np.mean(np.sum(normals * (centres - RAY_CENTRE), axis=1) > 0) < 0.5:
        skin_faces = skin_faces[:, ::-1]

    region = np.zeros(len(skin), np.int8)
    region[lip_sdf(skin) < 0.0] = REGION_NAMES.index("lips")
    parts_v, parts_f, parts_r = [skin], [skin_faces], [region]

    def add(verts, faces, regions):
        offset = sum(len(x) for x in parts_v)
        parts_v.append(np.asarray(verts, float))
        parts_f.append(np.asarray(faces) + offset)
        parts_r.append(np.asarray(regions, np.int8))
        return offset

    eye_offsets = []
    for side in (1, -1):
        centre = (side * 0.155, 0.085, 0.305)
        verts, faces, polar = _uv_sphere(centre, 0.062, 10, 16)
        regions = np.where(polar < np.radians(32), REGION_NAMES.index("iris"), REGION_NAMES.index("eyes"))
        eye_offsets.append(add(verts, faces, regions))
    teeth = REGION_NAMES.index("teeth")
    v, f = _arc_strip(-0.205, -0.242, 0.12, 0.285, np.radians(48), 11)
    add(v, f, np.full(len(v), teeth))  # upper teeth
    v, f = _arc_strip(-0.246, -0.280, 0.11, 0.285, np.radians(46), 11)
    add(v, f, np.full(len(v), teeth))  # lower teeth
    v, f, _ = _uv_sphere((0, MOUTH_Y, 0.30), 1.0, 8, 14)
    v = (v - (0, MOUTH_Y, 0.30)) * (0.12, 0.085, 0.11) + (0, MOUTH_Y, 0.30)
    add(v, f[:, ::-1], np.full(len(v), REGION_NAMES.index("mouth")))  # cavity faces inwards

    vertices = np.concatenate(parts_v).astype(np.float32)
    faces = np.concatenate(parts_f).astype(np.int32)
    vertex_region = np.concatenate(parts_r)

    def nearest(point, candidates):
        candidates = np.asarray(candidates)
        return int(candidates[np.argmin(np.linalg.norm(vertices[candidates] - np.asarray(point), axis=1))])

    skin_ids = np.arange(len(skin))
    centre_col = int(np.argmin(np.abs(azimuth)))
    corner_cols = [int(np.argmin(np.abs(azimuth - s * corner_azimuth))) for s in (1, -1)]
    landmarks = {
        "upper_lip": int(grid[mouth_row, centre_col]),
        "lower_lip": int(lower_index[centre_col]),
        "mouth_corner_left": int(grid[mouth_row, corner_cols[0]]),
        "mouth_corner_right": int(grid[mouth_row, corner_cols[1]]),
        "nose_tip": nearest((0, -0.06, 0.60), skin_ids),
        "chin": nearest((0, -0.47, 0.30), skin_ids),
        "brow_inner_left": nearest((0.06, 0.20, 0.45), skin_ids),
        "brow_inner_right": nearest((-0.06, 0.20, 0.45), skin_ids),
        "brow_outer_left": nearest((0.25, 0.20, 0.40), skin_ids),
        "brow_outer_right": nearest((-0.25, 0.20, 0.40), skin_ids),
        "eye_left": nearest((0.155, 0.085, 0.40), skin_ids),
        "eye_right": nearest((-0.155, 0.085, 0.40), skin_ids),
    }
    front = skin[:, 2] > 0.05
    lip_vertices = np.where(front & (np.abs(skin[:, 0]) < 0.2) & (skin[:, 1] < -0.12) & (skin[:, 1] > -0.36))[0]
    upper_face = np.where(front & (skin[:, 1] > 0.0) & (np.abs(skin[:, 0]) < 0.34) & (skin[:, 1] < 0.45))[0]
    return Head(
        vertices=vertices,
        faces=faces,
        pivot=np.array([0.0, -0.55, -0.10], np.float32),
        landmarks=landmarks,
        lip_vertices=lip_vertices.astype(np.int64),
        upper_face_vertices=upper_face.astype(np.int64),
        vertex_region=vertex_region,
    )


def save_head(head: Head, mesh_path: Path = HEAD_MESH, info_path: Path = HEAD_INFO) -> None:
    from ...core.mesh_io import write_mesh

    mesh_path.parent.mkdir(parents=True, exist_ok=True)
    write_mesh(mesh_path, head.vertices, head.faces)
    info = {
        "description": "Talking Head demo head: procedural, generated by training/corpus/head_mesh.py",
        "units": "BIWI-like (about 1 unit = 16 cm); x left, y up, z forward",
        "pivot": [round(float(x), 6) for x in head.pivot],
        "landmarks": head.landmarks,
        "regions": list(REGION_NAMES),
        "vertex_region_runs": _run_length(head.vertex_region),
        "lip_vertices": head.lip_vertices.tolist(),
        "upper_face_vertices": head.upper_face_vertices.tolist(),
    }
    info_path.write_text(json.dumps(info, separators=(",", ":")) + "\n")


def load_head() -> Head:
    """The stored head (core/assets/head.ply + head.json)."""
    from ...core.mesh_io import read_mesh

    mesh = read_mesh(HEAD_MESH)
    info = json.loads(HEAD_INFO.read_text())
    return Head(
        vertices=mesh.vertices,
        faces=mesh.faces,
        pivot=np.asarray(info["pivot"], np.float32),
        landmarks={k: int(v) for k, v in info["landmarks"].items()},
        lip_vertices=np.asarray(info["lip_vertices"], np.int64),
        upper_face_vertices=np.asarray(info["upper_face_vertices"], np.int64),
        vertex_region=_run_length_decode(info["vertex_region_runs"]),
    )


def _run_length(values: np.ndarray) -> list[list[int]]:
    runs, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            runs.append([int(values[start]), i - start])
            start = i
    return runs


def _run_length_decode(runs: list[list[int]]) -> np.ndarray:
    return np.concatenate([np.full(n, value, np.int8) for value, n in runs])


if __name__ == "__main__":  # regenerate the stored head: python -m talking_head.training.corpus.head_mesh
    head = generate_head()
    save_head(head)
    print(f"wrote {HEAD_MESH.name}: {len(head.vertices)} vertices, {len(head.faces)} triangles")
