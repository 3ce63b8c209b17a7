"""Where the panel's choices point: the chosen model bundle's folder and the add-on's Python with
torch. Kept apart from `session` and `properties` so that both (and `styles`) can read them
without importing each other."""

from __future__ import annotations

import bpy

from ..core.bundle_info import DEMO_BUNDLE
from .dependencies import ROOT_PACKAGE


def bundle_path(settings) -> str:
    """The bundle folder the settings name ("" when none is chosen)."""
    if settings.bundle_source == "DEMO":
        return str(DEMO_BUNDLE)
    return bpy.path.abspath(settings.bundle_folder) if settings.bundle_folder else ""


def preferences():
    """The add-on's preferences (`properties.TalkingHeadPreferences`), or None when not registered."""
    addon = bpy.context.preferences.addons.get(ROOT_PACKAGE)
    return addon.preferences if addon is not None else None


def python_path() -> str:
    """The Python with torch set in the preferences, or "" (then the add-on's own install is used)."""
    prefs = preferences()
    return bpy.path.abspath(prefs.python_path) if prefs is not None and prefs.python_path else ""
