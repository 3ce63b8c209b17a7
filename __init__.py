"""Talking Head: a Blender extension that animates a 3D face from a sound file.

The same folder is the Python package `talking_head`, in floors: `core/` animates and tunes
(plain Python and torch, never `bpy`), `training/` trains, evaluates and builds the corpus,
`app/` holds the entry points (the `talking-head` command, `bake`, the demo), and `blender/`,
`operators/`, `panels/` are the Blender side, imported only when Blender calls `register()`.
"""


def _classes() -> tuple:
    """Every Blender class the add-on registers, in registration order."""
    from .operators import animate, character, dependencies, export, tuning
    from .panels import sidebar

    return (*animate.CLASSES, *character.CLASSES, *tuning.CLASSES, *export.CLASSES, *dependencies.CLASSES, *sidebar.CLASSES)


def register() -> None:
    """Properties first, then operators and panels; `unregister` is this reversed."""
    import bpy

    from .blender import properties

    properties.register()
    for cls in _classes():
        bpy.utils.register_class(cls)


def unregister() -> None:
    """Also stops the worker that stays loaded between Animate clicks (a new version of the
    add-on may be installed next, and a disabled add-on holds no model in memory)."""
    import bpy

    from .blender import properties, worker_client

    worker_client.close_server()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
    properties.unregister()
