"""Install Dependencies as a plan: the exact pip commands for each kind of machine, the checks that
refuse before anything downloads, one install at a time, and Remove. Nothing here downloads:
pip is never run (a fake process stands in), and the network probe is a fake connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from talking_head.blender import dependencies as deps
from talking_head.blender.dependencies import PlatformFacts

PY = "/blender/python/bin/python3.11"
COMMON = ["-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--timeout", "15", "--retries", "1",
          "--prefer-binary", "--upgrade", "--target"]
REST = ["numpy==1.26.4", "transformers==5.24.0", "safetensors==0.8.0", "huggingface_hub==2.4.0", "soundfile==0.14.0",
        "soxr==1.1.0", "plyfile==1.0.3", "tqdm==4.70.1", "pocketsphinx==5.1.1", "silero-vad==6.2.3", "onnxruntime==1.32.0"]


def linux(driver=None, capability=None, machine="x86_64") -> PlatformFacts:
    return PlatformFacts("Linux", machine, (3, 11), driver_cuda=driver, compute_capability=capability, temp_dir="/tmp")


def commands(plan) -> list[list[str]]:
    return [list(command) for command in plan.commands]


def expected(target: str, torch: list[str], python: str = PY) -> list[list[str]]:
    constraints = str(Path(target) / ".talking-head-constraints.txt")
    return [
        [python, *COMMON, target, *torch],
        [python, *COMMON, target, "--constraint", constraints, *REST],
    ]


# ---------------------------------------------------------------------------------------------
# The exact commands


def test_linux_with_a_cuda_13_driver_installs_torch_alone_from_the_cuda_13_index():
    plan = deps.plan_install(linux((13, 0), (8, 6)), "/home/me/th/site-packages", python=PY)
    assert plan.flavour == "cu130"
    assert commands(plan) == expected("/home/me/th/site-packages",
                                      ["--index-url", "https://download.pytorch.org/whl/cu130", "torch==2.13.0"])
    # The second step resolves with torch held at the build the first step installed.
    assert plan.files == {"/home/me/th/site-packages/.talking-head-constraints.txt": "torch==2.13.0+cu130\n"}
    assert plan.hosts == ("download.pytorch.org",)
    assert "--extra-index-url" not in sum(commands(plan), [])
    assert "CUDA 13.0 build" in plan.summary and "about 3 GB" in plan.summary


@pytest.mark.parametrize("driver, capability, flavour", [
    ((12, 2), (8, 6), "cu126"),  # a CUDA 12 driver older than 12.6 runs 12.6 builds (minor version compatibility)
    ((12, 4), None, "cu126"),
    ((12, 9), (8, 9), "cu126"),  # torch 2.13 publishes no 12.8/12.9 builds
    ((13, 1), (9, 0), "cu130"),
    ((13, 2), (12, 0), "cu132"),
    ((14, 0), (12, 0), "cu132"),
    ((13, 0), (6, 1), "cu126"),  # a Pascal GPU: CUDA 13 builds have no kernels for it
    ((13, 0), (3, 7), "cpu"),  # a Kepler GPU: no torch 2.13 build runs on it
])
def test_the_cuda_build_follows_the_driver_and_the_gpu(driver, capability, flavour):
    plan = deps.plan_install(linux(driver, capability), "/t", python=PY)
    assert plan.flavour == flavour
    index = "https://download.pytorch.org/whl/" + flavour
    assert commands(plan)[0][-3:] == ["--index-url", index, "torch==2.13.0"]


def test_linux_with_an_old_driver_gets_the_cpu_build_and_says_why():
    plan = deps.plan_install(linux((11, 8), (7, 5)), "/t", python=PY)
    assert plan.flavour == "cpu"
    assert commands(plan) == expected("/t", ["--index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"])
    assert "CUDA 11.8" in plan.summary and "update the driver" in plan.summary


def test_linux_without_nvidia_gets_the_cpu_build():
    plan = deps.plan_install(linux(), "/home/me/th/site-packages", python=PY)
    assert commands(plan) == expected("/home/me/th/site-packages",
                                      ["--index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"])
    assert plan.files == {"/home/me/th/site-packages/.talking-head-constraints.txt": "torch==2.13.0+cpu\n"}
    assert "CPU build (no NVIDIA driver found)" in plan.summary
    arm = deps.plan_install(linux(machine="aarch64"), "/t", python=PY)
    assert arm.flavour == "cpu"


def test_windows_with_nvidia_and_a_short_folder():
    facts = PlatformFacts("Windows", "amd64", (3, 11), driver_cuda=(13, 2), compute_capability=(8, 9), temp_dir=r"C:\Users\me\AppData\Local\Temp")
    target, python = r"C:\Users\me\AppData\Local\TalkingHead\py311", r"C:\Program Files\Blender\5.0\python\bin\python.exe"
    plan = deps.plan_install(facts, target, python=python)
    assert commands(plan) == expected(target, ["--index-url", "https://download.pytorch.org/whl/cu132", "torch==2.13.0"], python)


def test_macos_arm64_takes_pypi_wheels_which_use_mps():
    facts = PlatformFacts("Darwin", "arm64", (3, 11), apple_silicon=True, temp_dir="/var/folders/x")
    plan = deps.plan_install(facts, "/Users/me/th/site-packages", python=PY)
    assert plan.flavour == "pypi"
    assert commands(plan) == expected("/Users/me/th/site-packages", ["torch==2.13.0"])
    assert plan.files == {"/Users/me/th/site-packages/.talking-head-constraints.txt": "torch==2.13.0\n"}
    assert plan.hosts == ("pypi.org",) and "MPS" in plan.summary


def test_machines_without_torch_wheels_are_refused_with_what_to_do():
    with pytest.raises(deps.DependencyError, match="Apple Silicon build of Blender"):
        deps.plan_install(PlatformFacts("Darwin", "x86_64", (3, 11), apple_silicon=True), "/t")
    with pytest.raises(deps.DependencyError, match="Intel Macs"):
        deps.plan_install(PlatformFacts("Darwin", "x86_64", (3, 11)), "/t")
    with pytest.raises(deps.DependencyError, match="Python 3.9"):
        deps.plan_install(PlatformFacts("Linux", "x86_64", (3, 9)), "/t")


def test_pip_is_bootstrapped_first_when_blender_has_none():
    plan = deps.plan_install(linux(), "/t", python=PY, has_pip=False)
    assert commands(plan)[0] == [PY, "-m", "ensurepip", "--upgrade", "--user"] and len(plan.commands) == 3


def test_a_newer_python_gets_a_numpy_with_wheels_for_it():
    plan = deps.plan_install(PlatformFacts("Linux", "x86_64", (3, 13)), "/t", python=PY)
    assert "numpy>=2.1,<3" in plan.commands[-1] and "numpy==1.26.4" not in plan.commands[-1]


def test_nvidia_smi_output_is_read():
    header = (
        "+-----------------------------------------------------------------------------------------+\n"
        "| NVIDIA-SMI 580.65.06              Driver Version: 580.65.06      CUDA Version: 13.0     |\n"
        "|-----------------------------------------+------------------------+----------------------+\n"
    )
    old = "| NVIDIA-SMI 470.82.01    Driver Version: 470.82.01    CUDA Version: 11.4     |"
    assert deps.parse_driver_cuda(header) == (13, 0)
    assert deps.parse_driver_cuda(old) == (11, 4)
    assert deps.parse_driver_cuda("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.") is None
    assert deps.parse_compute_capability("8.6\n6.1\n") == (6, 1)
    assert deps.parse_compute_capability("Field \"compute_cap\" is not a valid field to query.") is None


def test_detected_facts_describe_this_machine():
    facts = deps.detect_platform()
    assert facts.python == sys.version_info[:2] and facts.system in ("Linux", "Windows", "Darwin")


# ---------------------------------------------------------------------------------------------
# Windows paths


def test_a_long_windows_folder_is_refused_with_what_to_do():
    facts = PlatformFacts("Windows", "amd64", (3, 11), temp_dir=r"C:\Users\me\AppData\Local\Temp")
    long = r"C:\Users\abcdefgh\AppData\Roaming\Blender Foundation\Blender\5.0\extensions\.user\user_default\talking_head\site-packages"
    with pytest.raises(deps.DependencyError, match="too long for Windows") as refused:
        deps.plan_install(facts, long)
    assert "LongPathsEnabled" in str(refused.value) and "short folder" in str(refused.value)
    # With long paths enabled the same folder is fine; elsewhere the length does not matter.
    deps.plan_install(PlatformFacts("Windows", "amd64", (3, 11), long_paths=True), long)
    deps.plan_install(linux(), "/" + "x" * 200)
    # The limit: the folder, a separator and torch's longest file within 259 characters.
    deps.check_path_length("C:\\" + "x" * (259 - 160 - 1 - 3), facts)
    with pytest.raises(deps.DependencyError):
        deps.check_path_length("C:\\" + "x" * (259 - 160 - 1 - 2), facts)


def test_a_long_temp_folder_is_refused_too():
    facts = PlatformFacts("Windows", "amd64", (3, 11), temp_dir="C:\\" + "t" * 80)
    with pytest.raises(deps.DependencyError, match="set TEMP to a short folder"):
        deps.plan_install(facts, r"C:\th")


def test_windows_without_long_paths_installs_into_a_short_folder(monkeypatch):
    long = Path(r"C:\Users\abcdefgh\AppData\Roaming\Blender Foundation\Blender\5.0\extensions\.user\user_default\talking_head\site-packages")
    monkeypatch.setattr(deps, "user_site_packages", lambda create=False: long)
    monkeypatch.setenv("LOCALAPPDATA", r"C:\Users\abcdefgh\AppData\Local")
    facts = PlatformFacts("Windows", "amd64", (3, 11), temp_dir=r"C:\Temp")
    folder = deps.install_folder(facts)
    assert folder == Path(r"C:\Users\abcdefgh\AppData\Local") / "TalkingHead" / "py311"
    deps.plan_install(facts, folder)  # short enough
    assert deps.install_folder(PlatformFacts("Windows", "amd64", (3, 11), long_paths=True)) == long
    assert deps.install_folder(linux()) == long


# ---------------------------------------------------------------------------------------------
# Online access and an offline machine


def test_no_download_while_blender_may_not_go_online():
    with pytest.raises(deps.OfflineError, match="enable 'Allow Online Access' in Edit > Preferences > System > Network"):
        deps.check_online_access(SimpleNamespace(online_access=False, online_access_override=False))
    with pytest.raises(deps.OfflineError, match="--offline-mode"):
        deps.check_online_access(SimpleNamespace(online_access=False, online_access_override=True))
    deps.check_online_access(SimpleNamespace(online_access=True, online_access_override=False))


def test_install_refuses_before_planning_when_offline(monkeypatch):
    monkeypatch.setattr(deps, "plan_install", lambda *a, **k: pytest.fail("planned while offline"))
    with pytest.raises(deps.OfflineError, match="Allow Online Access"):
        deps.start_install(facts=linux(), app=SimpleNamespace(online_access=False))


def test_an_unreachable_index_gives_one_clear_line(monkeypatch):
    monkeypatch.setattr(deps.urllib.request, "getproxies", lambda: {})
    tried = []

    def offline(address, timeout):
        tried.append((address, timeout))
        raise OSError("Temporary failure in name resolution")

    with pytest.raises(deps.OfflineError, match="Cannot reach download.pytorch.org .*nothing was downloaded"):
        deps.probe_index("download.pytorch.org", connect=offline)
    assert tried == [(("download.pytorch.org", 443), 5.0)]
    deps.probe_index("pypi.org", connect=lambda address, timeout: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(deps.urllib.request, "getproxies", lambda: {"https": "http://proxy:3128"})
    deps.probe_index("download.pytorch.org", connect=offline)  # behind a proxy pip knows better: no probe
    assert len(tried) == 1


# ---------------------------------------------------------------------------------------------
# Running a plan (a fake pip), one install at a time


class FakePip:
    """Stands in for subprocess.Popen: records each command and plays back its output and exit code."""

    def __init__(self, results: list[tuple[int, str]], seen_lock: Path | None = None):
        self.results, self.commands, self.seen_lock, self.lock_was_held = list(results), [], seen_lock, []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        if self.seen_lock is not None:
            self.lock_was_held.append(deps.InstallLock(self.seen_lock).held())
        code, text = self.results.pop(0)
        return SimpleNamespace(stdout=iter(text.encode().splitlines(keepends=True)), wait=lambda: code, poll=lambda: code)


def test_a_plan_runs_its_commands_in_order_holding_the_lock(tmp_path):
    plan = deps.plan_install(linux((13, 0), (8, 6)), tmp_path, python=PY)
    constraints = tmp_path / ".talking-head-constraints.txt"
    pip = FakePip([(0, "Successfully installed torch-2.13.0+cu130\n"), (0, "Successfully installed transformers-5.24.0\n")], tmp_path)
    seen = []
    install = deps.Installation(plan, probe=seen.append, popen=pip).start()
    assert install.wait(10)
    assert install.error is None and install.last_line == "Successfully installed transformers-5.24.0"
    assert seen == ["download.pytorch.org"]
    assert pip.commands == commands(plan) and pip.lock_was_held == [True, True]
    assert not (tmp_path / ".talking-head-install.lock").exists() and not constraints.exists()


def test_a_failed_pip_says_offline_and_releases_the_lock(tmp_path):
    plan = deps.plan_install(linux(), tmp_path, python=PY)
    output = ("WARNING: Retrying (Retry(total=0, ...)) after connection broken by 'NameResolutionError(...)': /whl/cpu/torch/\n"
              "ERROR: Could not find a version that satisfies the requirement torch==2.13.0 (from versions: none)\n")
    pip = FakePip([(1, output)])
    install = deps.Installation(plan, probe=lambda host: None, popen=pip).start()
    install.wait(10)
    assert install.error.startswith("pip cannot reach the package index (offline?)")
    assert len(pip.commands) == 1  # the rest never starts
    assert not (tmp_path / ".talking-head-install.lock").exists()
    other = deps.Installation(plan, probe=lambda host: None, popen=FakePip([(1, "ERROR: No matching distribution found for soxr==1.1.0\n")])).start()
    other.wait(10)
    assert other.error == "pip failed: ERROR: No matching distribution found for soxr==1.1.0"


def test_an_unreachable_index_runs_no_pip(tmp_path):
    def offline(host):
        raise deps.OfflineError(f"Cannot reach {host}")

    pip = FakePip([])
    install = deps.Installation(deps.plan_install(linux(), tmp_path, python=PY), probe=offline, popen=pip).start()
    install.wait(10)
    assert install.error == "Cannot reach download.pytorch.org" and pip.commands == []
    assert not (tmp_path / ".talking-head-install.lock").exists()


def test_only_one_install_at_a_time(tmp_path):
    lock = deps.InstallLock(tmp_path)
    lock.acquire()
    assert lock.held() and lock.owner() == os.getpid()
    with pytest.raises(deps.InstallRunning, match="already being installed"):
        deps.InstallLock(tmp_path).acquire()
    with pytest.raises(deps.InstallRunning):
        deps.Installation(deps.plan_install(linux(), tmp_path, python=PY), popen=FakePip([])).start()
    lock.release()
    assert not lock.held()
    deps.InstallLock(tmp_path).acquire()  # free again
    deps.InstallLock(tmp_path).release()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / ".talking-head-install.lock").write_text(str(gone.pid))
    lock = deps.InstallLock(tmp_path)
    assert not lock.held()
    lock.acquire()
    assert lock.owner() == os.getpid()
    lock.release()


# ---------------------------------------------------------------------------------------------
# Finding and removing what was installed


def fake_install(folder: Path) -> Path:
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text("")
    (folder / "transformers").mkdir()
    return folder


def test_the_worker_uses_an_installed_folder_but_not_one_being_installed(tmp_path, monkeypatch):
    folder = fake_install(tmp_path / "site-packages")
    monkeypatch.setattr(deps, "install_folders", lambda: [tmp_path / "elsewhere", folder])
    assert deps.worker_python("") == (sys.executable, [str(folder)])
    lock = deps.InstallLock(folder)
    lock.acquire()
    try:
        assert deps.installed_folder() is None
    finally:
        lock.release()


def test_remove_deletes_only_the_add_ons_folder(tmp_path, monkeypatch):
    folder = fake_install(tmp_path / "talking_head" / "site-packages")
    neighbour = tmp_path / "talking_head" / "styles"
    neighbour.mkdir()
    (neighbour / "me.json").write_text("{}")
    environment = tmp_path / "venv"  # a 'Python with torch' environment is never touched
    fake_install(environment)
    monkeypatch.setattr(deps, "install_folders", lambda: [folder, tmp_path / "not-there"])
    assert deps.remove_installed() == [folder]
    assert not folder.exists() and (neighbour / "me.json").is_file() and (environment / "torch").is_dir()
    assert deps.remove_installed() == []


def test_remove_waits_for_a_running_install(tmp_path):
    folder = fake_install(tmp_path / "site-packages")
    lock = deps.InstallLock(folder)
    lock.acquire()
    try:
        with pytest.raises(deps.InstallRunning, match="wait for it to finish"):
            deps.remove_installed([folder])
        assert (folder / "torch").is_dir()
    finally:
        lock.release()


def test_remove_dependencies_operator(tmp_path, monkeypatch):
    bpy = pytest.importorskip("bpy")
    import talking_head

    folder = fake_install(tmp_path / "site-packages")
    monkeypatch.setattr(deps, "install_folders", lambda: [folder])
    talking_head.register()
    try:
        assert bpy.ops.talking_head.remove_dependencies() == {"FINISHED"}
        assert not folder.exists()
        assert bpy.ops.talking_head.remove_dependencies() == {"CANCELLED"}
        # bpy as a module has online access off: Install refuses at once, before pip.
        monkeypatch.setattr(deps, "plan_install", lambda *a, **k: pytest.fail("planned while offline"))
        with pytest.raises(RuntimeError, match="Allow Online Access"):
            bpy.ops.talking_head.install_dependencies()
    finally:
        talking_head.unregister()


# ---------------------------------------------------------------------------------------------
# mps as a device


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    from talking_head.core import device

    for cuda, mps, picked in [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]:
        monkeypatch.setattr(device, "cuda_available", lambda cuda=cuda: cuda)
        monkeypatch.setattr(device, "mps_available", lambda mps=mps: mps)
        assert device.resolve_device("auto") == picked
    assert device.resolve_device("cpu") == "cpu"
    with pytest.raises(device.DeviceError, match="--device mps was asked for but torch sees no Apple Silicon GPU"):
        device.resolve_device("mps")
    monkeypatch.setattr(device, "mps_available", lambda: True)
    assert device.resolve_device("mps") == "mps"


def test_mps_availability_reads_torch(monkeypatch):
    import torch

    from talking_head.core import device

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.mps_available()
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert not device.mps_available()


def test_mps_flows_to_the_command_line_and_the_panel():
    from talking_head.app import checks

    assert "mps" in checks.DEVICES and checks.device("mps") == "mps"
    # The parser's list is core/device.py's, read without loading torch.
    code = "import sys, talking_head.app.checks as c; assert 'torch' not in sys.modules; print(','.join(c.DEVICES))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "auto,cpu,cuda,mps"
    bpy = pytest.importorskip("bpy")
    import talking_head

    talking_head.register()
    try:
        settings = bpy.context.scene.talking_head
        assert settings.bl_rna.properties["device"].enum_items.keys() == ["auto", "cpu", "cuda", "mps"]
        settings.device = "mps"
    finally:
        talking_head.unregister()


def test_removing_or_installing_dependencies_stops_the_loaded_worker(tmp_path, monkeypatch):
    """The worker that stays loaded between clicks has the installed packages imported: changing
    them closes it, so the next Animate starts a worker on what is installed now."""
    from talking_head.blender import dependencies

    closed = []
    monkeypatch.setattr(dependencies, "close_server", lambda: closed.append(True))
    folder = tmp_path / "deps"
    folder.mkdir()
    assert dependencies.remove_installed([folder]) == [folder]
    assert closed == [True] and not folder.exists()
