"""Plain-Python core of Talking Head: audio, encoders, generators, bundles, command line.

Nothing in this package imports `bpy`; Blender code lives in the extension's other folders.
"""
