"""The first minutes of a new user: a cached re-run loads no model, a missing hub model fails in seconds with
advice, progress says what is happening (and leaves no frozen bar)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from labelaudit.cache import EmbeddingCache
from labelaudit.cli import main
from labelaudit.embed import embed_samples
from labelaudit.encoders import hub
from labelaudit.encoders.plan import DEFAULT_CLIP_HUB, ENCODER_FACTS, EncoderPlan, LazyEncoder, plan_encoder
from labelaudit.errors import ModelUnavailableError
from labelaudit.progress import Reporter

from .conftest import ROOT, SAMPLE_TEXT, TINY_MODEL

HEAVY = ("torch", "sentence_transformers", "open_clip")
TINY = ["--model", str(TINY_MODEL), "--pretrained", "random"]


def test_a_fully_cached_rerun_imports_no_model_library_and_writes_the_same_report(tmp_path: Path) -> None:
    args = ["audit", str(SAMPLE_TEXT), "--cache-dir", str(tmp_path / "cache"), "-q", *TINY]
    assert main([*args, "--out", str(tmp_path / "cold")]) == 0
    cold_run = json.loads((tmp_path / "cold" / "run.json").read_text())
    assert cold_run["model_loaded"] is True and "load_model" in cold_run["timings_s"]

    probe = (
        f"from labelaudit.cli import main\nassert main({[*args, '--out', str(tmp_path / 'warm')]!r}) == 0\n"
        f"import json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    warm_run = json.loads((tmp_path / "warm" / "run.json").read_text())
    assert warm_run["model_loaded"] is False and warm_run["platform"]["device"] is None
    for name in ("report.csv", "classes.csv", "summary.json", "report.html"):
        assert (tmp_path / "cold" / name).read_bytes() == (tmp_path / "warm" / name).read_bytes(), name


class _FakeEncoder:
    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.logit_scale = 99.99998474121094
        self.device = "cpu"

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32) / 2.0


def _trained_plan() -> EncoderPlan:
    return EncoderPlan("open_clip", "ViT-B-32", "some-tag", None, "cpu", "open_clip:ViT-B-32:some-tag", "x")


def test_a_trained_models_logit_scale_is_stored_once_and_read_back_without_loading(tmp_path: Path) -> None:
    builds: list[str] = []

    def build(plan: EncoderPlan) -> Any:
        builds.append(plan.identity)
        return _FakeEncoder(plan.identity)

    first = LazyEncoder(_trained_plan(), build=build)
    first.remember_in(tmp_path)
    assert first.logit_scale == 99.99998474121094  # no facts yet: loads
    assert builds == [first.identity] and (tmp_path / ENCODER_FACTS).is_file()

    again = LazyEncoder(_trained_plan(), build=build)
    again.remember_in(tmp_path)
    assert again.logit_scale == 99.99998474121094 and not again.loaded
    assert builds == [first.identity]
    again.encode_texts(["a"])  # embedding is what loads it
    assert again.loaded and len(builds) == 2


def test_a_lazy_encoder_that_builds_another_model_is_refused() -> None:
    lazy = LazyEncoder(_trained_plan(), build=lambda plan: _FakeEncoder("open_clip:other:tag"))
    with pytest.raises(RuntimeError, match="planned encoder"):
        lazy.load()


@pytest.mark.parametrize(
    ("modality", "options"),
    [
        ("text", {"model": f"st:{'all-MiniLM-L6-v2'}"}),
        ("image", {"model": str(TINY_MODEL), "pretrained": "random"}),
        ("image", {"model": str(TINY_MODEL), "checkpoint": "CHECKPOINT"}),
    ],
)
def test_the_plan_names_the_encoder_exactly_as_the_loaded_model(
    modality: str, options: dict[str, str], tmp_path: Path
) -> None:
    import torch

    from labelaudit.encoders import build_encoder

    if options.get("checkpoint") == "CHECKPOINT":
        from labelaudit.encoders.openclip import OpenClipEncoder

        state = OpenClipEncoder(str(TINY_MODEL), "random", None, torch.device("cpu")).model.state_dict()
        torch.save(state, tmp_path / "tiny.pt")
        options = {**options, "checkpoint": str(tmp_path / "tiny.pt")}
    plan, _ = plan_encoder(modality, device="cpu", **options)
    built = build_encoder(plan)
    assert (plan.identity, plan.description) == (built.identity, built.description)
    assert tuple(plan.templates(modality)) == tuple(built.templates(modality))
    assert (built.logit_scale is not None) == plan.has_trained_scale


def test_the_default_clip_hub_repository_is_open_clips() -> None:
    import open_clip

    from labelaudit.encoders.plan import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

    assert open_clip.pretrained.get_pretrained_cfg(DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED)["hf_hub"] == (
        DEFAULT_CLIP_HUB
    )


def test_an_uncached_hub_model_without_a_network_fails_at_once_with_the_checkpoint_advice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import open_clip

    from labelaudit.encoders import openclip

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))  # nothing is cached there
    monkeypatch.setattr(openclip, "hub_reachable", lambda: False)

    def no_download(*args: object, **kwargs: object) -> str:
        raise AssertionError("went to the network")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", no_download)
    with pytest.raises(ModelUnavailableError, match="cannot be reached") as raised:
        openclip.resolve_weights("ViT-B-32", "laion2b_s34b_b79k")
    assert "--checkpoint" in str(raised.value)


def test_an_uncached_sentence_model_without_a_network_is_not_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    from labelaudit.encoders import sentence

    calls: list[dict[str, object]] = []

    def factory(location: str, **kwargs: object) -> object:
        calls.append(kwargs)
        raise OSError("not in the cache")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sentence, "hub_reachable", lambda: False)
    with pytest.raises(ModelUnavailableError, match="cannot be reached"):
        sentence._load(factory, "someone/uncached-model", "cpu")
    assert calls == [{"device": "cpu", "local_files_only": True}]  # the local cache only, never the hub


def test_the_hub_probe_says_unreachable_when_no_connection_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> socket.socket:
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert hub.hub_reachable(timeout_s=1.0) is False
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    assert hub.hub_endpoint() == ("mirror.example", 8080)


class _RecordingReporter(Reporter):
    def __init__(self) -> None:
        super().__init__(enabled=False)
        self.tasks: list[tuple[str, int | None]] = []

    def task(self, description: str, total: int | None):  # type: ignore[override]
        self.tasks.append((description, total))
        return super().task(description, total)


def test_nothing_to_embed_shows_no_bar_and_a_model_load_shows_a_spinner(tmp_path: Path) -> None:
    samples = pd.DataFrame({"text": ["a", "b"], "content_hash": ["h1", "h2"], "sample_id": ["1", "2"]})
    cache = EmbeddingCache(tmp_path, "fake")
    cache.store(["h1", "h2"], np.ones((2, 4), dtype=np.float32))
    reporter = _RecordingReporter()
    lazy = LazyEncoder(_trained_plan(), reporter, build=lambda plan: _FakeEncoder(plan.identity))
    result = embed_samples(samples, "text", lazy, cache, reporter=reporter)
    assert result.n_cached == 2 and reporter.tasks == [] and not lazy.loaded

    cache = EmbeddingCache(tmp_path, "fake-2")
    embed_samples(samples, "text", lazy, cache, reporter=reporter)
    assert reporter.tasks == [("Loading x", None), ("Embedding", 2)]


@pytest.mark.parametrize("name", ["id", "sample_id", "UID"])
def test_a_manifest_id_column_is_the_sample_id_without_id_col(name: str, tmp_path: Path) -> None:
    from labelaudit.discover import discover

    frame = pd.DataFrame({name: ["a7", "b3", "c1", "d9"], "text": ["w", "x", "y", "z"], "label": list("ppqq")})
    frame.to_csv(tmp_path / "m.csv", index=False)
    dataset = discover(tmp_path / "m.csv")
    assert dataset.samples["sample_id"].tolist() == ["a7", "b3", "c1", "d9"]
    assert dataset.columns is not None and dataset.columns.id == name

    frame[name] = ["a7", "a7", "c1", "d9"]  # repeats: not an id column, so rows are numbered as before
    frame.to_csv(tmp_path / "dup.csv", index=False)
    assert discover(tmp_path / "dup.csv").samples["sample_id"].tolist() == ["0", "1", "2", "3"]


def test_api_errors_name_the_keyword_and_cli_errors_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import labelaudit
    from labelaudit.errors import DataError

    frame = pd.DataFrame({"review": ["a", "b", "c", "d"], "label": list("ppqq")})
    with pytest.raises(DataError) as raised:
        labelaudit.audit(frame, cache_dir=None)
    assert "path_col=" in str(raised.value) and "text_col=" in str(raised.value)
    assert "--path-col" not in str(raised.value)

    frame.to_csv(tmp_path / "m.csv", index=False)
    assert main(["audit", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "--no-cache"]) == 2
    assert "--path-col" in capsys.readouterr().err


def test_audit_help_groups_its_options_and_shows_defaults_one_way(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TERM", "dumb")
    assert main(["audit", "--help"]) == 0
    text = capsys.readouterr().out
    for panel in ("Data", "Model", "Methods", "Output", "Engine and cache"):
        assert f"─ {panel} ─" in text, panel
    assert "(default" not in text  # every default is a [default: ...], none is left in the help prose
    assert "zeroshot, knn" in text and max(len(line) for line in text.splitlines()) <= 80


def test_help_shows_no_value_type_beside_a_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """typer printed `<bool>` beside every flag (--json, --quiet, --help), as if each wanted a value."""
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TERM", "dumb")
    for command in ([], ["audit"], ["gate"], ["export"], ["apply"], ["verify"], ["estimate"], ["view"]):
        assert main([*command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "<bool>" not in text, command
        assert "--help" in text and ("<float>" in text or "<path>" in text or not command), command
    assert main(["gate", "--help"]) == 0
    json_line = next(line for line in capsys.readouterr().out.splitlines() if "--json" in line)
    assert json_line.split("--json")[1].split("Print")[0].strip(" │") == ""  # nothing between the flag and its help


@pytest.mark.parametrize("columns", ["80", "120"])
def test_command_help_prose_wraps_to_the_terminal_not_to_the_source(
    columns: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A docstring wrapped at the source's width printed its line breaks as they were: at 80 columns gate's
    help broke after "another dataset, encoder" with half a line empty."""
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setenv("TERM", "dumb")
    for command in ("gate", "export", "apply", "verify"):
        assert main([command, "--help"]) == 0
        prose = capsys.readouterr().out.split("╭")[0].splitlines()[3:]  # the description, above the panels
        lines = [line.rstrip() for line in prose]
        for line, after in zip(lines, lines[1:], strict=False):
            if line and after:  # a line followed by more of its paragraph is filled to near the width
                assert len(line) > int(columns) - 20, (command, line)


def test_integer_labels_named_by_a_classes_file_show_as_names_in_every_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = sorted(SAMPLE_TEXT.glob("*/*.txt"))
    keys = {"cooking": "0", "finance": "1", "space": "2", "sports": "3"}
    frame = pd.DataFrame({"text": [t.read_text() for t in texts], "label": [keys[t.parent.name] for t in texts]})
    frame.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "classes.txt").write_text("0\tCOOKING\n1\tFINANCE\n2\tSPACE\n3\tSPORTS\n")
    out = tmp_path / "r"
    args = ["audit", str(tmp_path / "m.csv"), "--classes", str(tmp_path / "classes.txt"), "--out", str(out)]
    assert main([*args, "--no-cache", "--methods", "knn,zeroshot", *TINY]) == 0
    terminal = capsys.readouterr().out
    assert "COOKING" in terminal or "FINANCE" in terminal or "SPACE" in terminal or "SPORTS" in terminal

    report = pd.read_csv(out / "report.csv", dtype=str)
    assert set(report["given_label"]) == {"0", "1", "2", "3"}  # the keys stay: apply writes them back
    named = dict(zip(report["given_label"], report["given_name"], strict=True))
    assert named == {"0": "COOKING", "1": "FINANCE", "2": "SPACE", "3": "SPORTS"}
    assert set(report["suggested_name"]) <= {"COOKING", "FINANCE", "SPACE", "SPORTS"}
    html = (out / "report.html").read_text()
    assert '"0":"COOKING"' in html and 'title="COOKING: ' in html  # the page's data and its class bars

    assert main(["export", str(out), "--top", "5", "--out", str(tmp_path / "q.csv")]) == 0
    assert "given_name" in pd.read_csv(tmp_path / "q.csv").columns
    assert main(["export", str(out), "--to", "labelstudio", "--top", "5", "--out", str(tmp_path / "q.json")]) == 0
    config = (tmp_path / "q.config.xml").read_text()
    assert '<Choice value="SPACE" alias="2"' in config and "$given_name" in config
    task = json.loads((tmp_path / "q.json").read_text())[0]
    assert task["data"]["given_name"] == named[task["data"]["given_label"]]


def test_integer_labels_without_names_are_called_codes_where_zero_shot_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = sorted(SAMPLE_TEXT.glob("*/*.txt"))
    keys = {"cooking": "0", "finance": "1", "space": "2", "sports": "3"}
    frame = pd.DataFrame({"text": [t.read_text() for t in texts], "label": [keys[t.parent.name] for t in texts]})
    frame.to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "classes.txt").write_text("0\tCOOKING\n1\tFINANCE\n2\tSPACE\n3\tSPORTS\n")

    def warnings(*options: str) -> list[str]:
        out = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        assert main(["audit", str(tmp_path / "m.csv"), "--out", str(out), "--no-cache", *options, *TINY]) == 0
        coded = [w for w in json.loads((out / "summary.json").read_text())["warnings"] if "codes" in w]
        assert ("class names are codes" in (out / "report.html").read_text()) == bool(coded)  # the page says it too
        return coded

    coded = warnings("--methods", "knn,zeroshot")
    assert len(coded) == 1 and "'0', '1', '2', '3'" in coded[0] and "--classes" in coded[0]
    told = capsys.readouterr()
    assert "class names are codes" in " ".join((told.out + told.err).split())  # said on the terminal too
    assert warnings("--methods", "knn,zeroshot", "--classes", str(tmp_path / "classes.txt")) == []
    assert warnings("--methods", "knn") == []  # no method reads the names


def test_missing_default_weights_fail_before_torch_is_imported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import labelaudit.encoders as encoders

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)

    def no_build(plan: EncoderPlan) -> Any:
        raise AssertionError("imported open_clip to find out")

    monkeypatch.setattr(encoders, "build_encoder", no_build)
    plan, _ = plan_encoder("image")
    with pytest.raises(ModelUnavailableError, match="cannot be reached") as raised:
        LazyEncoder(plan).load()
    assert "--checkpoint" in str(raised.value)
