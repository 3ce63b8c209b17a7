"""The measurement scripts' own logic (their training runs are the CLI's, tested elsewhere)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_table_gives_each_seed_and_mean_and_spread(tmp_path):
    seeds = load("seeds")
    assert seeds.parse_run("full:full:lambda_con=1e-4,lambda_div=1e-7") == ("full", "full", {"lambda_con": 1e-4, "lambda_div": 1e-7})
    assert seeds.parse_run("baseline:baseline") == ("baseline", "baseline", {})
    for seed, (se, ue) in enumerate([(20e-4, 30e-4), (24e-4, 34e-4)]):
        report = tmp_path / f"full_s{seed}"
        report.mkdir()
        subsets = {"SE": {"model": {"lve": se}, "template": {"lve": 60e-4}}, "UE": {"model": {"lve": ue}, "template": {"lve": 62e-4}}}
        (report / "report.json").write_text(json.dumps({"subsets": subsets}))
    table = seeds.seeds_markdown(tmp_path, ["full", "baseline"], [0, 1, 2])
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert "| 20.00 | 24.00 | - | 30.00 | 34.00 | - | 22.00 ± 2.83 | 32.00 ± 2.83 |" in rows["full"]
    assert rows["baseline"].count("-") >= 8  # no reports: no numbers
    assert "60.00" in rows["template only (no motion)"]
    with pytest.raises(ValueError):
        seeds.parse_run("full")


def test_emotion_stills_picks_the_frame_within_the_neutral_passage(tmp_path):
    stills = load("emotion_stills")
    audio = tmp_path / "sample.wav"
    assert stills.passage_frames(audio, "neutral", 25, 300) == (0, 300)  # no description: the whole clip
    audio.with_suffix(".json").write_text(json.dumps({"passages": [
        {"emotion": "happy", "start": 0.0, "end": 2.0}, {"emotion": "neutral", "start": 2.5, "end": 20.0}]}))
    assert stills.passage_frames(audio, "neutral", 25, 300) == (62, 300)  # clipped to the take's frames
    assert stills.passage_frames(audio, "sad", 25, 300) == (0, 300)
