"""Where the animation worker gets torch: an existing Python environment the user names in the
preferences, or packages installed with pip into the extension's own user folder.

Blender's Python has no torch, and Blender itself never imports it: only the worker does.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from ..core.errors import TalkingHeadError

# The package Blender registered us under ("talking_head", or "bl_ext.<repo>.talking_head").
ROOT_PACKAGE = __package__.rsplit(".", 1)[0]
# What the worker imports (pyproject.toml's dependencies, without the command-line extras).
REQUIREMENTS = [
    "torch",
    "numpy>=1.26,<2",
    "transformers>=4.45",
    "safetensors>=0.4",
    "huggingface_hub>=0.25",
    "soundfile>=0.12.1",
    "soxr>=0.3",
    "plyfile>=1.0,<1.1",
    "tqdm>=4.66",
]
TORCH_INDEX = "https://download.pytorch.org/whl/"
WHAT_TO_DO = (
    "The model needs PyTorch, which Blender does not ship. Open Edit > Preferences > Add-ons > "
    "Talking Head and press 'Install dependencies' (about 1-3 GB), or set 'Python with torch' to "
    "the python of an environment where `pip install torch transformers soundfile soxr plyfile` was run."
)


class MissingDependencies(TalkingHeadError):
    """No Python with torch is available for the worker."""


def user_site_packages(create: bool = False) -> Path:
    """The extension's own folder for installed packages."""
    import bpy

    try:
        return Path(bpy.utils.extension_path_user(ROOT_PACKAGE, path="site-packages", create=create))
    except (ValueError, RuntimeError, AttributeError):  # not running as an extension (scripts, tests)
        return Path(bpy.utils.user_resource("SCRIPTS", path="talking_head/site-packages", create=create))


def installed_in_user_site() -> bool:
    site = user_site_packages()
    return (site / "torch" / "__init__.py").is_file() and (site / "transformers").is_dir()


def worker_python(python_path: str = "") -> tuple[str, list[str]]:
    """The interpreter that runs the worker and the extra import paths it needs."""
    if python_path:
        path = Path(python_path).expanduser()
        if not path.is_file():
            raise MissingDependencies(f"'Python with torch' is set to {python_path}, which is not a file. " + WHAT_TO_DO)
        return str(path), []
    if installed_in_user_site():
        return sys.executable, [str(user_site_packages())]
    if importlib.util.find_spec("torch") is not None:  # e.g. the bpy module inside a virtual environment
        return sys.executable, []
    raise MissingDependencies(WHAT_TO_DO)


def status(python_path: str = "") -> tuple[bool, str]:
    """(ready, one line for the panel)."""
    try:
        python, paths = worker_python(python_path)
    except MissingDependencies as exc:
        return False, str(exc)
    where = "installed dependencies" if paths else ("environment " + python if python_path else "Blender's Python")
    return True, f"Model runs with {where}"


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def install_command(target: Path, cuda: bool | None = None) -> list[str]:
    """pip into `target`: CUDA wheels when an NVIDIA GPU is present, CPU wheels otherwise
    (macOS wheels on PyPI use the GPU through MPS)."""
    cuda = has_nvidia_gpu() if cuda is None else cuda
    command = [sys.executable, "-m", "pip", "install", "--upgrade", "--no-input", "--target", str(target)]
    if platform.system() != "Darwin":
        command += ["--extra-index-url", TORCH_INDEX + ("cu126" if cuda else "cpu")]
    return command + REQUIREMENTS


def start_install(target: Path | None = None, cuda: bool | None = None) -> subprocess.Popen:
    """Start pip (Blender's own, bootstrapped with ensurepip if needed); the caller polls it."""
    target = target or user_site_packages(create=True)
    if importlib.util.find_spec("pip") is None:
        subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade", "--user"], check=False)
    return subprocess.Popen(
        install_command(target, cuda), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
