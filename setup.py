"""The package's version is the extension manifest's (blender_manifest.toml): one place to change it."""

import tomllib
from pathlib import Path

from setuptools import setup

setup(version=tomllib.loads((Path(__file__).resolve().parent / "blender_manifest.toml").read_text())["version"])
