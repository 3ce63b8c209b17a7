"""register() / unregister() for Blender: properties, operators, panels, in that order;
unregister is register reversed."""

from __future__ import annotations

import bpy


def _classes() -> tuple:
    from ..operators import animate, dependencies, export, tuning
    from ..panels import sidebar

    return (*animate.CLASSES, *tuning.CLASSES, *export.CLASSES, *dependencies.CLASSES, *sidebar.CLASSES)


def register() -> None:
    from . import properties

    properties.register()
    for cls in _classes():
        bpy.utils.register_class(cls)


def unregister() -> None:
    from . import properties

    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
    properties.unregister()
