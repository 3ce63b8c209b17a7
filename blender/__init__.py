"""Blender layer: everything that touches bpy (writing animation, export, preview, the panel's state)."""
