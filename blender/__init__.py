"""Blender layer: everything that touches bpy (writing animation, export, registration)."""
