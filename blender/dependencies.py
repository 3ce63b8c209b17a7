"""Where the animation worker gets torch: an existing Python environment the user names in the
preferences, or packages installed with pip into the add-on's own folder.

Blender's Python has no torch, and Blender itself never imports it: only the worker does.

The install is planned as plain data first (`plan_install`: platform facts in, the exact pip
commands out), then run by `Installation`, one at a time per folder (`InstallLock`):

1. torch alone, pinned to the tested version, with `--index-url` of one build flavour (a CUDA build
   the NVIDIA driver can run, else the CPU build; macOS arm64 takes PyPI's wheels, which use MPS);
2. the worker's other packages, pinned, from the default index, with a constraints file that holds
   torch at the build step 1 installed (none of them needs torch, so it is never re-resolved).

Short timeouts and one retry make an offline machine fail in seconds. Nothing here imports `bpy`
at module level: the plan is tested without Blender.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import TalkingHeadError
from .worker_client import close_server

# The package Blender registered us under ("talking_head", or "bl_ext.<repo>.talking_head").
ROOT_PACKAGE = __package__.rsplit(".", 1)[0]

# The tested set (pyproject.toml pins torch; the rest are the versions the test suite runs with).
TORCH_VERSION = "2.13.0"
WORKER_PACKAGES = (  # what the worker imports, besides torch and numpy
    "transformers==5.24.0",
    "safetensors==0.8.0",
    "huggingface_hub==2.4.0",
    "soundfile==0.14.0",
    "soxr==1.1.0",
    "plyfile==1.0.3",
    "tqdm==4.70.1",
    "pocketsphinx==5.1.1",  # forced alignment of a transcript (core/alignment.py)
    "silero-vad==6.2.3",  # voice activity, for rest in pauses (core/pauses.py)
    "onnxruntime==1.32.0",  # silero-vad's batched model (optional: the stock one without it)
)
NUMPY_TESTED = "numpy==1.26.4"  # Blender 4.2-5.0's numpy; its last wheels are for Python 3.12
NUMPY_NEWER_PYTHON = "numpy>=2.1,<3"  # Python 3.13+: numpy 1.26 has no wheels there (untested)
TORCH_PYTHONS = ((3, 10), (3, 15))  # the Python versions torch 2.13 publishes wheels for

TORCH_INDEX = "https://download.pytorch.org/whl/"
PYPI_HOST = "pypi.org"
# torch 2.13's CUDA builds (pytorch RELEASE.md: CUDA 12.6 legacy, 13.0 stable, 13.2 experimental),
# newest first: (flavour, CUDA version, lowest GPU compute capability it has kernels for).
# CUDA 13 dropped Maxwell, Pascal and Volta, so those GPUs get the 12.6 build.
CUDA_FLAVOURS = (
    ("cu132", (13, 2), (7, 5)),
    ("cu130", (13, 0), (7, 5)),
    ("cu126", (12, 6), (5, 0)),
)
PIP_OPTIONS = (
    "--no-input", "--disable-pip-version-check", "--timeout", "15", "--retries", "1", "--prefer-binary", "--upgrade",
)
CONSTRAINTS_FILE = ".talking-head-constraints.txt"
LOCK_FILE = ".talking-head-install.lock"

# Windows: pip fails on a path over MAX_PATH (260 characters with the final NUL) unless long paths are
# enabled. torch's longest file path adds about 160 characters to the folder it is installed in, and
# pip --target first installs into "<TEMP>\pip-target-XXXXXXXX\lib\python\" (about 32 more).
WINDOWS_MAX_PATH = 259
TORCH_LONGEST_FILE = 160
PIP_TARGET_TEMP = 32

WHAT_TO_DO = (
    "The model needs PyTorch, which Blender does not ship. Open Edit > Preferences > Add-ons > "
    "Talking Head and press 'Install dependencies' (about 1-3 GB), or set 'Python with torch' to "
    "the python of an environment where `pip install torch transformers soundfile soxr plyfile` was run."
)
ONLINE_ACCESS_OFF = (
    "Online access is off: enable 'Allow Online Access' in Edit > Preferences > System > Network, "
    "then press Install Dependencies again (it downloads 1-3 GB)"
)
OFFLINE_MODE = "Blender was started in offline mode (--offline-mode): restart it without that option to install dependencies"


class MissingDependencies(TalkingHeadError):
    """No Python with torch is available for the worker."""


class DependencyError(TalkingHeadError):
    """The dependencies cannot be installed or removed here; the message says what to do."""


class OfflineError(DependencyError):
    """Blender may not go online, or the package index cannot be reached."""


class InstallRunning(DependencyError):
    """Another install into the same folder has not finished."""


# ----------------------------------------------------------------------------------------------
# Platform facts


@dataclass(frozen=True)
class PlatformFacts:
    """What decides the install: everything `plan_install` needs, nothing it has to look up."""

    system: str  # platform.system(): "Linux", "Windows" or "Darwin"
    machine: str  # platform.machine(), lower case: "x86_64", "amd64", "arm64", "aarch64"
    python: tuple[int, int]  # the Python that runs the worker (Blender's)
    driver_cuda: tuple[int, int] | None = None  # the CUDA version the NVIDIA driver supports (nvidia-smi); None: no driver
    compute_capability: tuple[int, int] | None = None  # the oldest NVIDIA GPU's, when nvidia-smi tells it
    apple_silicon: bool = False  # an Apple Silicon Mac, even when this Python runs under Rosetta
    long_paths: bool = False  # Windows: LongPathsEnabled is set
    temp_dir: str = ""  # where pip --target stages its files


def parse_driver_cuda(nvidia_smi_output: str) -> tuple[int, int] | None:
    """The "CUDA Version: 12.4" of nvidia-smi's header: the newest CUDA the driver runs."""
    found = re.search(r"CUDA Version\s*:\s*(\d+)\.(\d+)", nvidia_smi_output)
    return (int(found.group(1)), int(found.group(2))) if found else None


def parse_compute_capability(query_output: str) -> tuple[int, int] | None:
    """The lowest of `nvidia-smi --query-gpu=compute_cap --format=csv,noheader` ("8.6" per GPU)."""
    found = [(int(a), int(b)) for a, b in re.findall(r"^\s*(\d+)\.(\d+)\s*$", query_output, re.MULTILINE)]
    return min(found) if found else None


def _run_quietly(command: list[str], timeout: float = 10.0) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def _windows_long_paths() -> bool:
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            return winreg.QueryValueEx(key, "LongPathsEnabled")[0] == 1
    except (ImportError, OSError):
        return False


@functools.lru_cache(maxsize=1)
def detect_platform() -> PlatformFacts:
    """This machine's facts (nvidia-smi runs once per session)."""
    system, machine = platform.system(), platform.machine().lower()
    driver_cuda = capability = None
    smi = shutil.which("nvidia-smi")
    if smi:
        driver_cuda = parse_driver_cuda(_run_quietly([smi]))
        capability = parse_compute_capability(_run_quietly([smi, "--query-gpu=compute_cap", "--format=csv,noheader"]))
    apple_silicon = system == "Darwin" and (machine == "arm64" or _run_quietly(["sysctl", "-n", "hw.optional.arm64"]).strip() == "1")
    return PlatformFacts(
        system=system, machine=machine, python=sys.version_info[:2], driver_cuda=driver_cuda, compute_capability=capability,
        apple_silicon=apple_silicon, long_paths=system == "Windows" and _windows_long_paths(), temp_dir=tempfile.gettempdir(),
    )


# ----------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class InstallPlan:
    """The exact commands of one install, as data."""

    target: str  # the folder everything goes into
    flavour: str  # "cu130", "cpu", or "pypi" (macOS arm64: PyPI's wheels, with MPS)
    summary: str  # one line for the preferences
    commands: tuple[tuple[str, ...], ...]
    files: dict[str, str] = field(default_factory=dict)  # written before the commands run: path -> text
    hosts: tuple[str, ...] = ()  # index hosts the commands name, probed first for a clear "offline"


def torch_flavour(facts: PlatformFacts) -> tuple[str, str]:
    """(flavour, why): the newest torch 2.13 CUDA build the driver and GPU run, else "cpu";
    "pypi" on macOS arm64. A driver runs a build of its own CUDA version or older, or a newer
    build of the same major version (CUDA minor version compatibility)."""
    if facts.system == "Darwin":
        return "pypi", "Apple Silicon GPU (MPS)"
    if facts.driver_cuda is None:
        return "cpu", "no NVIDIA driver found"
    capability = facts.compute_capability or (99, 0)
    runnable = [(name, cuda) for name, cuda, lowest in CUDA_FLAVOURS if capability >= lowest]
    if not runnable:
        return "cpu", f"the NVIDIA GPU (compute capability {capability[0]}.{capability[1]}) is too old for torch {TORCH_VERSION}"
    driver = facts.driver_cuda
    for name, cuda in runnable:  # newest first
        if cuda <= driver:
            return name, f"NVIDIA driver supports CUDA {driver[0]}.{driver[1]}"
    for name, cuda in reversed(runnable):  # oldest first: minor version compatibility
        if cuda[0] == driver[0]:
            return name, f"NVIDIA driver supports CUDA {driver[0]}.{driver[1]} (runs CUDA {cuda[0]}.{cuda[1]} builds)"
    oldest = runnable[-1][1]
    return "cpu", (f"the NVIDIA driver supports only CUDA {driver[0]}.{driver[1]}; torch {TORCH_VERSION}'s GPU builds need "
                   f"CUDA {oldest[0]}.{oldest[1]}: update the driver and install again for GPU speed")


def check_path_length(target: str | Path, facts: PlatformFacts) -> None:
    """Windows without long paths: refuse a folder whose torch files would pass 260 characters."""
    if facts.system != "Windows" or facts.long_paths:
        return
    longest = len(str(target)) + 1 + TORCH_LONGEST_FILE
    if longest > WINDOWS_MAX_PATH:
        raise DependencyError(
            f"The install folder {target} is too long for Windows: torch's files would reach {longest} characters "
            f"(the limit is 260). Enable long paths (Group Policy 'Enable Win32 long paths', or the registry value "
            f"LongPathsEnabled = 1, then restart Blender), or set 'Python with torch' to an environment in a short folder."
        )
    staged = len(facts.temp_dir) + PIP_TARGET_TEMP + TORCH_LONGEST_FILE
    if facts.temp_dir and staged > WINDOWS_MAX_PATH:
        raise DependencyError(
            f"pip stages files in {facts.temp_dir}, whose torch paths would reach {staged} characters (the limit is 260). "
            f"Enable long paths (LongPathsEnabled = 1, then restart Blender), or set TEMP to a short folder such as C:\\Temp."
        )


def worker_requirements(python: tuple[int, int]) -> list[str]:
    numpy = NUMPY_TESTED if python <= (3, 12) else NUMPY_NEWER_PYTHON
    return [numpy, *WORKER_PACKAGES]


def plan_install(facts: PlatformFacts, target: str | Path, python: str = sys.executable, has_pip: bool = True) -> InstallPlan:
    """The pip commands that install the worker's packages into `target` on the machine `facts` describe."""
    if not TORCH_PYTHONS[0] <= facts.python <= TORCH_PYTHONS[1]:
        raise DependencyError(f"torch {TORCH_VERSION} has no wheels for Python {facts.python[0]}.{facts.python[1]}; "
                              "set 'Python with torch' to an environment that has torch")
    if facts.system == "Darwin" and facts.machine not in ("arm64", "aarch64"):
        if facts.apple_silicon:
            raise DependencyError("This is the Intel build of Blender running on Apple Silicon: install the Apple Silicon "
                                  "build of Blender (torch has no wheels for Intel Macs), then install dependencies again")
        raise DependencyError(f"torch {TORCH_VERSION} has no wheels for Intel Macs: set 'Python with torch' to an environment "
                              "with an older torch (2.2), or run the model on another machine")
    check_path_length(target, facts)
    target = str(target)
    flavour, why = torch_flavour(facts)
    pip = (python, "-m", "pip", "install", *PIP_OPTIONS, "--target", target)
    torch_pin = f"torch=={TORCH_VERSION}"
    if flavour == "pypi":
        torch_step, hosts, built = (*pip, torch_pin), (PYPI_HOST,), torch_pin
    else:
        index = TORCH_INDEX + flavour
        torch_step, hosts, built = (*pip, "--index-url", index, torch_pin), (index.split("/")[2],), f"{torch_pin}+{flavour}"
    constraints = str(Path(target) / CONSTRAINTS_FILE)
    rest_step = (*pip, "--constraint", constraints, *worker_requirements(facts.python))
    commands = [torch_step, rest_step]
    if not has_pip:
        commands.insert(0, (python, "-m", "ensurepip", "--upgrade", "--user"))
    build = {"pypi": "macOS build (Apple GPU through MPS)", "cpu": "CPU build"}.get(flavour, f"CUDA {flavour[2:-1]}.{flavour[-1]} build")
    size = "about 3 GB" if flavour.startswith("cu") else "about 1 GB"
    summary = f"torch {TORCH_VERSION}, {build} ({why}), and {len(WORKER_PACKAGES) + 1} packages: {size}"
    return InstallPlan(target=target, flavour=flavour, summary=summary, commands=tuple(commands),
                       files={constraints: built + "\n"}, hosts=hosts)


# ----------------------------------------------------------------------------------------------
# Folders


def user_site_packages(create: bool = False) -> Path:
    """The extension's own folder for installed packages."""
    import bpy

    try:
        return Path(bpy.utils.extension_path_user(ROOT_PACKAGE, path="site-packages", create=create))
    except (ValueError, RuntimeError, AttributeError):  # not running as an extension (scripts, tests)
        return Path(bpy.utils.user_resource("SCRIPTS", path="talking_head/site-packages", create=create))


def short_windows_folder(python: tuple[int, int] = sys.version_info[:2]) -> Path:
    """A short folder of the add-on's own for Windows without long paths: %LOCALAPPDATA%\\TalkingHead\\py311."""
    base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    return Path(base) / "TalkingHead" / f"py{python[0]}{python[1]}"


def install_folders() -> list[Path]:
    """Every folder this add-on installs into (and may remove): its user folder, and on Windows the short one."""
    folders = [user_site_packages()]
    if platform.system() == "Windows":
        folders.append(short_windows_folder())
    return folders


def install_folder(facts: PlatformFacts | None = None) -> Path:
    """Where a new install goes: the extension's user folder, or the short one where Windows needs it."""
    facts = facts or detect_platform()
    folder = user_site_packages()
    if facts.system == "Windows" and not facts.long_paths and len(str(folder)) + 1 + TORCH_LONGEST_FILE > WINDOWS_MAX_PATH:
        return short_windows_folder(facts.python)
    return folder


def is_installed(folder: Path) -> bool:
    return (folder / "torch" / "__init__.py").is_file() and (folder / "transformers").is_dir()


def installed_folder() -> Path | None:
    return next((folder for folder in install_folders() if is_installed(folder) and not InstallLock(folder).held()), None)


def installed_in_user_site() -> bool:
    return installed_folder() is not None


def worker_python(python_path: str = "") -> tuple[str, list[str]]:
    """The interpreter that runs the worker and the extra import paths it needs."""
    if python_path:
        path = Path(python_path).expanduser()
        if not path.is_file():
            raise MissingDependencies(f"'Python with torch' is set to {python_path}, which is not a file. " + WHAT_TO_DO)
        return str(path), []
    folder = installed_folder()
    if folder is not None:
        return sys.executable, [str(folder)]
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


# ----------------------------------------------------------------------------------------------
# Online access


def check_online_access(app=None) -> None:
    """Refuse before any download when Blender's "Allow Online Access" is off."""
    if app is None:
        import bpy

        app = bpy.app
    if getattr(app, "online_access", True):
        return
    raise OfflineError(OFFLINE_MODE if getattr(app, "online_access_override", False) else ONLINE_ACCESS_OFF)


def probe_index(host: str, timeout: float = 5.0, connect: Callable = socket.create_connection) -> None:
    """A quick TCP connection to an index host, so an offline machine gets one clear line. Skipped
    behind a proxy (pip goes through it; a direct connection says nothing)."""
    if urllib.request.getproxies() or (host == PYPI_HOST and os.environ.get("PIP_INDEX_URL")):
        return  # a proxy, or a mirror pip is told to use instead of PyPI
    try:
        connect((host, 443), timeout=timeout).close()
    except OSError as exc:
        raise OfflineError(f"Cannot reach {host} ({exc.__class__.__name__}): check the internet connection, then press "
                           "Install Dependencies again; nothing was downloaded") from None


# ----------------------------------------------------------------------------------------------
# One install at a time


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        try:
            return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InstallLock:
    """A lock file in the install folder holding the installing process's id. A lock whose process
    has died (Blender crashed mid-install) is stale and taken over."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_FILE

    def owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            return None

    def held(self) -> bool:
        pid = self.owner()
        return pid is not None and _process_alive(pid)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if self.held():
                    raise InstallRunning(f"Dependencies are already being installed into {self.path.parent} "
                                         f"(process {self.owner()}): wait for it to finish") from None
                self.path.unlink(missing_ok=True)  # stale
                continue
            with os.fdopen(handle, "w") as lock:
                lock.write(str(os.getpid()))
            return
        raise InstallRunning(f"Another install took {self.path} just now: wait for it to finish")

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# Running and removing


def _pip_failure(output: list[str], code: int) -> str:
    text = "".join(output)
    if re.search(r"NameResolutionError|Failed to establish a new connection|Network is unreachable|ConnectTimeout|"
                 r"Read timed out|Temporary failure in name resolution|getaddrinfo failed", text):
        return "pip cannot reach the package index (offline?): check the internet connection and try again"
    if "No space left on device" in text:
        return "the disk is full: free a few GB and try again"
    errors = [line.strip() for line in output if line.strip().startswith("ERROR")]
    last = errors[-1] if errors else next((line.strip() for line in reversed(output) if line.strip()), f"exit code {code}")
    return f"pip failed: {last}"


class Installation:
    """Runs a plan in a background thread while holding the folder's lock; the operator polls
    `done`, `last_line` and `error` (None when every command succeeded)."""

    def __init__(self, plan: InstallPlan, probe: Callable[[str], None] = probe_index, popen: Callable = subprocess.Popen) -> None:
        self.plan, self._probe, self._popen = plan, probe, popen
        self.lock = InstallLock(plan.target)
        self.output: list[str] = []
        self.error: str | None = None
        self.done = False
        self.cancelled = False
        self._process = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Installation":
        self.lock.acquire()  # raises InstallRunning, before anything runs
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def cancel(self) -> None:
        self.cancelled = True
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    @property
    def last_line(self) -> str:
        return next((line.strip() for line in reversed(self.output) if line.strip()), "")

    def _run(self) -> None:
        try:
            for host in self.plan.hosts:
                self._probe(host)
            for path, text in self.plan.files.items():
                Path(path).write_text(text)
            for command in self.plan.commands:
                if self.cancelled:
                    break
                self._process = self._popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
                for raw in self._process.stdout:
                    self.output.append(raw.decode(errors="replace") if isinstance(raw, bytes) else raw)
                code = self._process.wait()
                if self.cancelled:
                    break
                if code != 0:
                    self.error = _pip_failure(self.output, code)
                    return
            if self.cancelled:
                self.error = "installation cancelled"
        except TalkingHeadError as exc:
            self.error = str(exc)
        except Exception as exc:  # a bug or an OS error: one line, the rest goes to the console
            self.error = f"{exc.__class__.__name__}: {exc}"
        finally:
            for path in self.plan.files:
                Path(path).unlink(missing_ok=True)
            self.lock.release()
            self.done = True


def start_install(facts: PlatformFacts | None = None, app=None, probe: Callable[[str], None] = probe_index) -> Installation:
    """Check that Blender may go online, plan for this machine and start the install (the caller polls it)."""
    check_online_access(app)
    facts = facts or detect_platform()
    plan = plan_install(facts, install_folder(facts), has_pip=importlib.util.find_spec("pip") is not None)
    installation = Installation(plan, probe=probe).start()
    close_server()  # the worker that stays loaded has the old packages imported: the next click starts a new one
    return installation


def remove_installed(folders: list[Path] | None = None) -> list[Path]:
    """Delete the add-on's own install folders (never the 'Python with torch' environment); the removed ones."""
    removed = []
    close_server()  # the worker that stays loaded runs from these folders
    for folder in folders if folders is not None else install_folders():
        if not folder.is_dir():
            continue
        if InstallLock(folder).held():
            raise InstallRunning(f"Dependencies are being installed into {folder}: wait for it to finish, then remove them")
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise DependencyError(f"Could not remove {folder} ({exc.strerror or exc}): finish or cancel running animations, "
                                  "restart Blender and try again") from None
        removed.append(folder)
    return removed
