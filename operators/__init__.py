"""Blender operators: thin, options in, one call out."""
