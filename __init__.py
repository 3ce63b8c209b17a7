"""Talking Head: a Blender extension that animates a 3D face from a sound file.

The same folder is the Python package `talking_head`: `core/` is plain Python and torch
(no `bpy`) and serves the `talking-head` command line; the Blender side is imported only
when Blender calls `register()`.
"""


def register() -> None:
    from .blender import registration

    registration.register()


def unregister() -> None:
    from .blender import registration

    registration.unregister()
