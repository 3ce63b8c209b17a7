"""Blender panels: the "Talking Head" sidebar tab."""
