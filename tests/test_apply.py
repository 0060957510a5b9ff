"""`labelaudit apply`: decisions validated first, applied whole or not at all, and undone byte for byte."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

import labelaudit.apply as applying
from labelaudit.cli import main
from labelaudit.config import DataSpec
from labelaudit.errors import LabelAuditError

from .conftest import make_image
from .report_factory import report_from_data, tree_state

SUSPECTS = {"red/red_1.png": "blue", "green/green_2.png": "red", "blue/blue_0.png": "green"}


@pytest.fixture
def queue(image_folder: Path, tmp_path: Path) -> Path:
    """A reviewed CSV queue of the image folder: the three suspects plus three more rows."""
    report = report_from_data(tmp_path / "report", image_folder, SUSPECTS)
    out = tmp_path / "review" / "queue.csv"
    assert main(["export", str(report), "--top", "6", "--out", str(out)]) == 0
    return out


def decide(queue: Path, decisions: dict[str, str], extra: list[dict[str, str]] | None = None) -> Path:
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    frame["decision"] = [decisions.get(s, "") for s in frame["sample_id"]]
    if extra:
        frame = pd.concat([frame, pd.DataFrame(extra)], ignore_index=True).fillna("")
    frame.to_csv(queue, index=False)
    return queue


def journals(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.journal-*.json"))


def test_folder_apply_and_undo_round_trip(image_folder: Path, queue: Path, capsys: pytest.CaptureFixture) -> None:
    before = tree_state(image_folder)
    decide(queue, {"red/red_1.png": "relabel:blue", "green/green_2.png": "remove", "blue/blue_0.png": "keep"})
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 0
    assert (image_folder / "blue" / "red_1.png").is_file() and not (image_folder / "red" / "red_1.png").exists()
    assert (image_folder / "_removed" / "green" / "green_2.png").is_file()
    assert (image_folder / "blue" / "blue_0.png").is_file()
    (journal,) = journals(queue.parent)
    record = json.loads(journal.read_text())
    assert record["status"] == "applied" and record["counts"]["relabel"] == 1 and record["counts"]["remove"] == 1
    assert {op["dst"] for op in record["operations"]} == {"blue/red_1.png", "_removed/green/green_2.png"}
    assert "undo with" in " ".join(capsys.readouterr().err.split())

    assert main(["apply", "--undo", str(journal)]) == 0
    assert tree_state(image_folder) == before  # every byte and folder back, _removed/ gone
    assert json.loads(journal.read_text())["status"] == "undone"
    assert main(["apply", "--undo", str(journal)]) == 2  # twice is refused


def test_dry_run_changes_nothing(image_folder: Path, queue: Path, capsys: pytest.CaptureFixture) -> None:
    before = tree_state(image_folder)
    decide(queue, {"red/red_1.png": "relabel:blue", "green/green_2.png": "remove"})
    assert main(["apply", str(queue), "--data", str(image_folder), "--dry-run", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "dry-run"
    assert "would move 2 file(s)" in captured.err
    assert tree_state(image_folder) == before and not journals(queue.parent)


def refused(image_folder: Path, queue: Path, capsys: pytest.CaptureFixture, *expected: str) -> None:
    before = tree_state(image_folder)
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "nothing was changed" in err
    for text in expected:
        assert text in err, err
    assert tree_state(image_folder) == before and not journals(queue.parent)


# every refusal comes with one valid row, which must not be applied either
VALID = {"red/red_1.png": "relabel:blue"}


def test_refuses_unknown_class(image_folder: Path, queue: Path, capsys: pytest.CaptureFixture) -> None:
    decide(queue, {**VALID, "green/green_2.png": "relabel:purple"})
    refused(image_folder, queue, capsys, "(green/green_2.png): unknown class 'purple'")


def test_refuses_changed_file(image_folder: Path, queue: Path, capsys: pytest.CaptureFixture) -> None:
    make_image(image_folder / "green" / "green_2.png", (0, 0, 0))
    decide(queue, {**VALID, "green/green_2.png": "remove"})
    refused(image_folder, queue, capsys, "(green/green_2.png): file changed since the audit")


def test_refuses_missing_file_and_moved_label(image_folder: Path, queue: Path, capsys: pytest.CaptureFixture) -> None:
    (image_folder / "green" / "green_2.png").unlink()
    os.rename(image_folder / "blue" / "blue_0.png", image_folder / "red" / "blue_0.png")
    decide(queue, {**VALID, "green/green_2.png": "remove", "blue/blue_0.png": "remove"})
    refused(image_folder, queue, capsys, "(green/green_2.png): file not found", "(blue/blue_0.png): file not found")


def test_refuses_paths_outside_the_root(
    image_folder: Path, queue: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    outside = make_image(tmp_path / "elsewhere" / "x.png", (1, 2, 3))
    (image_folder / "red" / "link.png").symlink_to(outside)
    extra = [
        {"sample_id": "../elsewhere/x.png", "decision": "remove"},
        {"sample_id": "red/link.png", "decision": "remove"},
        {"sample_id": str(outside), "decision": "remove"},
    ]
    decide(queue, VALID, extra)
    refused(
        image_folder,
        queue,
        capsys,
        "(../elsewhere/x.png): not a path inside a class folder",
        "(red/link.png): path resolves outside the dataset root",
        f"({outside}): not a path inside a class folder",
    )
    assert outside.is_file()


def test_refuses_bad_decisions_and_contradictions(
    image_folder: Path, queue: Path, capsys: pytest.CaptureFixture
) -> None:
    extra = [
        {"sample_id": "red/red_1.png", "decision": "remove"},
        {"sample_id": "red/red_2.png", "decision": "delete"},
        {"sample_id": "red/red_3.png", "decision": "relabel:"},
    ]
    decide(queue, VALID, extra)
    refused(
        image_folder,
        queue,
        capsys,
        "(red/red_1.png): contradicts line",
        "(red/red_2.png): unknown decision 'delete'",
        "(red/red_3.png): 'relabel' needs a class",
    )


def test_refuses_to_overwrite_and_given_label_drift(
    image_folder: Path, queue: Path, capsys: pytest.CaptureFixture
) -> None:
    make_image(image_folder / "blue" / "red_1.png", (9, 9, 9))  # the relabel target exists already
    frame = pd.read_csv(queue, dtype=str, keep_default_na=False)
    frame.loc[frame["sample_id"] == "green/green_2.png", "given_label"] = "blue"
    frame.to_csv(queue, index=False)
    decide(queue, {**VALID, "green/green_2.png": "keep"})
    refused(
        image_folder,
        queue,
        capsys,
        "(red/red_1.png): blue/red_1.png already exists",
        "(green/green_2.png): was labelled 'blue' at the audit but is in 'green' now",
    )


def test_journal_inside_the_dataset_is_refused(image_folder: Path, queue: Path) -> None:
    before = tree_state(image_folder)
    decide(queue, VALID)
    assert main(["apply", str(queue), "--data", str(image_folder), "--journal", str(image_folder / "j.json")]) == 2
    assert tree_state(image_folder) == before


def test_undo_refuses_a_file_edited_after_apply(image_folder: Path, queue: Path) -> None:
    decide(queue, {"green/green_2.png": "remove", **VALID})
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 0
    make_image(image_folder / "_removed" / "green" / "green_2.png", (0, 0, 0))
    after = tree_state(image_folder)
    (journal,) = journals(queue.parent)
    assert main(["apply", "--undo", str(journal)]) == 2
    assert tree_state(image_folder) == after  # nothing moved back, not even the untouched file


def test_labelstudio_export_as_decisions(image_folder: Path, queue: Path, tmp_path: Path) -> None:
    before = tree_state(image_folder)
    tasks_file = tmp_path / "ls" / "tasks.json"
    report = tmp_path / "report"
    assert main(["export", str(report), "--to", "labelstudio", "--out", str(tasks_file)]) == 0
    tasks = json.loads(tasks_file.read_text())
    answers = {  # what reviewers clicked: control name -> choice
        "red/red_1.png": ("label", "blue"),
        "green/green_2.png": ("review", "remove"),
        "blue/blue_0.png": ("label", "blue"),  # confirmed the given label
    }
    for number, task in enumerate(tasks, start=1):
        task["id"] = number
        control, choice = answers[task["data"]["sample_id"]]
        result = [{"from_name": control, "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
        task["annotations"] = [{"id": number, "result": result, "was_cancelled": False}]
    export = tmp_path / "ls" / "export.json"
    export.write_text(json.dumps(tasks))
    assert main(["apply", str(export), "--data", str(image_folder)]) == 0
    assert (image_folder / "blue" / "red_1.png").is_file()
    assert (image_folder / "_removed" / "green" / "green_2.png").is_file()
    assert (image_folder / "blue" / "blue_0.png").is_file()
    (journal,) = journals(export.parent)
    assert main(["apply", "--undo", str(journal)]) == 0
    assert tree_state(image_folder) == before


def _labelstudio_tasks(queue: Path, tmp_path: Path) -> list[dict]:
    tasks_file = tmp_path / "ls" / "tasks.json"
    assert main(["export", str(tmp_path / "report"), "--to", "labelstudio", "--out", str(tasks_file)]) == 0
    tasks = json.loads(tasks_file.read_text())
    for number, task in enumerate(tasks, start=1):
        task["id"] = number
    return tasks


def _annotation(number: int, control: str, choice: str, cancelled: bool = False) -> dict:
    result = [{"from_name": control, "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
    return {"id": number, "completed_by": {"email": f"r{number}@x"}, "result": result, "was_cancelled": cancelled}


def _json_min(tasks: list[dict]) -> list[dict]:
    """What Label Studio's JSON-MIN export writes: one flat record per annotation, the task id repeated."""
    records = []
    for task in tasks:
        for a in task["annotations"]:
            if a["was_cancelled"]:
                continue
            (item,) = a["result"]
            records.append(
                {
                    **task["data"],
                    "id": task["id"],
                    item["from_name"]: item["value"]["choices"][0],  # a single choice is written bare
                    "annotator": a["completed_by"]["email"],
                    "annotation_id": a["id"],
                }
            )
    return records


@pytest.mark.parametrize("flavour", ["json", "json-min"])
def test_labelstudio_disagreeing_annotations_are_refused_by_name(
    image_folder: Path, queue: Path, tmp_path: Path, capsys: pytest.CaptureFixture, flavour: str
) -> None:
    tasks = _labelstudio_tasks(queue, tmp_path)
    by_id = {t["data"]["sample_id"]: t for t in tasks}
    for task in tasks:
        task["annotations"] = []
    # two reviewers disagree on red_1: the full export used to take the last one in silence
    by_id["red/red_1.png"]["annotations"] = [_annotation(11, "label", "blue"), _annotation(12, "label", "red")]
    # two agree on green_2 (one more skipped the task): one decision
    by_id["green/green_2.png"]["annotations"] = [
        _annotation(13, "review", "remove"),
        _annotation(14, "label", "green", cancelled=True),
        _annotation(15, "review", "remove"),
    ]
    export = tmp_path / "ls" / "export.json"
    export.write_text(json.dumps(tasks if flavour == "json" else _json_min(tasks)))
    before = tree_state(image_folder)
    assert main(["apply", str(export), "--data", str(image_folder)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    task = by_id["red/red_1.png"]["id"]
    assert f"task {task} (red/red_1.png): its 2 annotations disagree" in err
    assert "annotation 11 by r11@x: relabel:blue; annotation 12 by r12@x: keep" in err
    assert "green_2" not in err and "1 decision(s)" in err
    assert tree_state(image_folder) == before  # nothing applied

    by_id["red/red_1.png"]["annotations"].pop()  # settled in Label Studio: the agreeing rest applies
    export.write_text(json.dumps(tasks if flavour == "json" else _json_min(tasks)))
    assert main(["apply", str(export), "--data", str(image_folder)]) == 0
    assert (image_folder / "blue" / "red_1.png").is_file()
    assert (image_folder / "_removed" / "green" / "green_2.png").is_file()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    data = tmp_path / "ds"
    labels = ["cat", "cat", "cat", "dog", "dog", "dog"]
    for i in range(6):
        make_image(data / "img" / f"{i}.png", (i * 40, 0, 0))
    pd.DataFrame({"path": [f"img/{i}.png" for i in range(6)], "label": labels, "note": list("abcdef")}).to_csv(
        data / "train.csv", index=False
    )
    return data / "train.csv"


def test_manifest_apply_writes_a_new_manifest(manifest: Path, tmp_path: Path) -> None:
    report = report_from_data(tmp_path / "r", manifest, {"img/1.png": "dog", "img/4.png": "cat"})
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--out", str(queue)]) == 0
    decide(queue, {"img/1.png": "relabel:dog", "img/4.png": "remove"})
    original = manifest.read_bytes()
    before = tree_state(manifest.parent)
    assert main(["apply", str(queue), "--data", str(manifest)]) == 0
    assert manifest.read_bytes() == original
    corrected = pd.read_csv(manifest.with_name("train.corrected.csv"), dtype=str)
    assert corrected["path"].tolist() == [f"img/{i}.png" for i in (0, 1, 2, 3, 5)]
    assert corrected["label"].tolist() == ["cat", "dog", "cat", "dog", "dog"]
    assert corrected["note"].tolist() == list("abcdf")
    # a second apply would overwrite the corrected manifest: refused
    assert main(["apply", str(queue), "--data", str(manifest)]) == 2
    (journal,) = journals(tmp_path)
    assert main(["apply", "--undo", str(journal)]) == 0
    assert tree_state(manifest.parent) == before


def test_manifest_refusals(manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = report_from_data(tmp_path / "r", manifest, {"img/1.png": "dog"})
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--top", "3", "--out", str(queue)]) == 0
    assert main(["apply", str(queue), "--data", str(manifest), "--out", str(manifest)]) == 2
    assert "never over the original" in " ".join(capsys.readouterr().err.split())
    make_image(manifest.parent / "img" / "0.png", (1, 1, 1))
    before = tree_state(manifest.parent)
    decide(
        queue,
        {"img/1.png": "relabel:bird", "img/0.png": "remove"},
        [{"sample_id": "img/9.png", "decision": "remove"}],
    )
    assert main(["apply", str(queue), "--data", str(manifest)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "(img/1.png): unknown class 'bird'" in err
    assert "(img/0.png): file changed since the audit" in err
    assert "(img/9.png): no manifest row has this sample id" in err
    assert tree_state(manifest.parent) == before


def test_a_manifest_row_relabelled_since_the_audit_is_refused(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = report_from_data(tmp_path / "r", manifest, {"img/1.png": "dog"})
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--top", "3", "--out", str(queue)]) == 0
    decide(queue, {"img/1.png": "relabel:dog"})
    frame = pd.read_csv(manifest)
    frame.loc[frame["path"] == "img/1.png", "label"] = "dog"  # someone fixed it by hand after the audit
    frame.to_csv(manifest, index=False)
    assert main(["apply", str(queue), "--data", str(manifest)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "(img/1.png): was labelled 'cat' at the audit but is 'dog' in the manifest" in err
    assert not manifest.with_name("train.corrected.csv").exists()


def test_text_manifest_rows_are_matched_by_position(tmp_path: Path) -> None:
    manifest = tmp_path / "texts.csv"
    frame = pd.DataFrame({"text": [f"sample number {i}" for i in range(4)], "label": ["a", "a", "b", "b"]})
    frame.to_csv(manifest, index=False)
    report = report_from_data(tmp_path / "r", manifest, {"2": "a"})
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--out", str(queue)]) == 0
    decide(queue, {"2": "relabel:a"})
    assert main(["apply", str(queue), "--data", str(manifest), "--out", str(tmp_path / "fixed.csv")]) == 0
    assert pd.read_csv(tmp_path / "fixed.csv")["label"].tolist() == ["a", "a", "a", "b"]


def test_usage_errors(tmp_path: Path, queue: Path) -> None:
    assert main(["apply", str(queue)]) == 2  # no --data
    assert main(["apply", str(tmp_path / "missing.csv"), "--data", str(tmp_path)]) == 2
    assert main(["apply", "--undo", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "no-decision.csv").write_text("sample_id\nred/red_1.png\n")
    assert main(["apply", str(tmp_path / "no-decision.csv"), "--data", str(tmp_path)]) == 2


def test_manifest_backslash_paths_match_the_ids_discovery_gave_them(tmp_path: Path) -> None:
    # Discovery reads a\b.png as a/b.png when that exists, else as a file literally named "a\b.png";
    # apply must derive the same ids or a reviewed decision would find no row.
    data = tmp_path / "ds"
    for i in range(4):
        make_image(data / "img" / f"{i}.png", (i * 60, 0, 0))
    make_image(data / "odd\\name.png", (0, 0, 200))
    paths = ["img\\0.png", "img\\1.png", "img/2.png", "img/3.png", "odd\\name.png"]
    manifest = data / "train.csv"
    pd.DataFrame({"path": paths, "label": ["cat", "cat", "dog", "dog", "dog"]}).to_csv(manifest, index=False)
    report = report_from_data(tmp_path / "r", manifest, {"img/1.png": "dog", "odd\\name.png": "cat"})
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--out", str(queue)]) == 0
    decide(queue, {"img/1.png": "relabel:dog", "odd\\name.png": "relabel:cat"})

    assert main(["apply", str(queue), "--data", str(manifest)]) == 0

    corrected = pd.read_csv(manifest.with_name("train.corrected.csv"), dtype=str)
    assert corrected["path"].tolist() == paths  # the manifest's own spelling is kept
    assert corrected["label"].tolist() == ["cat", "dog", "dog", "dog", "cat"]


def test_apply_reads_the_dataset_and_its_columns_from_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "ds"
    for i in range(4):
        make_image(data / "img" / f"{i}.png", (i * 60, 0, 0))
    manifest = data / "train.csv"
    frame = pd.DataFrame({"picture": [f"img/{i}.png" for i in range(4)], "category": ["cat", "cat", "dog", "dog"]})
    frame.to_csv(manifest, index=False)
    spec = DataSpec(path_col="picture", label_col="category")  # names discovery cannot guess
    report = report_from_data(tmp_path / "r", manifest, {"img/1.png": "dog"}, spec=spec)
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--out", str(queue)]) == 0
    decide(queue, {"img/1.png": "relabel:dog"})

    assert main(["apply", str(queue), "--data", str(manifest), "--dry-run"]) == 2  # asked again, not told
    assert "--label-col" in capsys.readouterr().err
    assert main(["apply", str(queue), "--report", str(report)]) == 0  # the data and its columns from the report
    corrected = pd.read_csv(manifest.with_name("train.corrected.csv"))
    assert corrected["category"].tolist() == ["cat", "dog", "dog", "dog"]


def test_a_dangling_link_at_the_target_is_refused_and_kept(
    image_folder: Path, queue: Path, capsys: pytest.CaptureFixture
) -> None:
    link = image_folder / "blue" / "red_1.png"
    link.symlink_to(image_folder / "nowhere.png")  # the user's link, its target gone: still theirs
    decide(queue, VALID)
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 2
    assert "(red/red_1.png): blue/red_1.png already exists" in " ".join(capsys.readouterr().err.split())
    assert link.is_symlink() and os.readlink(link) == str(image_folder / "nowhere.png")
    assert (image_folder / "red" / "red_1.png").is_file() and not journals(queue.parent)


def test_two_decisions_moving_to_one_target_are_refused_before_anything_moves(
    image_folder: Path, queue: Path, capsys: pytest.CaptureFixture
) -> None:
    make_image(image_folder / "red" / "dup.png", (1, 1, 1))
    make_image(image_folder / "green" / "dup.png", (2, 2, 2))
    extra = [
        {"sample_id": "red/dup.png", "decision": "relabel:blue"},
        {"sample_id": "green/dup.png", "decision": "relabel:blue"},
    ]
    decide(queue, VALID, extra)
    refused(image_folder, queue, capsys, "(green/dup.png): blue/dup.png is also the target of red/dup.png")


def test_relabel_into_a_hidden_or_removed_folder_is_refused(
    image_folder: Path, queue: Path, capsys: pytest.CaptureFixture
) -> None:
    (image_folder / ".cache").mkdir()  # not classes: discovery ignores both
    (image_folder / "_removed").mkdir()
    extra = [
        {"sample_id": "green/green_2.png", "decision": "relabel:.cache"},
        {"sample_id": "blue/blue_3.png", "decision": "relabel:_removed"},
    ]
    decide(queue, VALID, extra)
    refused(
        image_folder,
        queue,
        capsys,
        "(green/green_2.png): unknown class '.cache'",
        "(blue/blue_3.png): unknown class '_removed'",
    )


def test_undo_keeps_a_class_folder_that_was_empty_before_apply(image_folder: Path, queue: Path) -> None:
    (image_folder / "purple").mkdir()  # a new class, made first as the unknown-class refusal says
    before = tree_state(image_folder)
    decide(queue, {"red/red_1.png": "relabel:purple", "green/green_2.png": "remove"})
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 0
    assert (image_folder / "purple" / "red_1.png").is_file()
    (journal,) = journals(queue.parent)
    assert main(["apply", "--undo", str(journal)]) == 0
    assert tree_state(image_folder) == before  # purple/ is still there, empty; _removed/ is gone


def test_a_file_that_appears_at_a_target_while_applying_is_kept_and_the_moves_are_rolled_back(
    image_folder: Path, queue: Path, tmp_path: Path
) -> None:
    extra = [  # in this order: the remove moves first, then the relabel finds its target taken
        {"sample_id": "green/green_2.png", "decision": "remove"},
        {"sample_id": "red/red_1.png", "decision": "relabel:blue"},
    ]
    decide(queue, {}, extra)
    plan, corrected = applying.plan_apply(queue, image_folder)
    make_image(image_folder / "blue" / "red_1.png", (9, 9, 9))  # written after the check, before the move
    before = tree_state(image_folder)
    with pytest.raises(LabelAuditError, match="rolled back"):
        applying.execute(plan, corrected, tmp_path / "journal.json")
    assert tree_state(image_folder) == before  # green_2 back in place, no _removed/, the newcomer untouched


def test_an_apply_killed_between_two_moves_is_undone_from_its_journal(
    image_folder: Path, queue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Killed(BaseException):
        """The process dies here: no rollback runs."""

    extra = [
        {"sample_id": "green/green_2.png", "decision": "remove"},
        {"sample_id": "red/red_1.png", "decision": "relabel:blue"},
    ]
    decide(queue, {}, extra)
    before = tree_state(image_folder)
    plan, corrected = applying.plan_apply(queue, image_folder)
    rename, moved = os.rename, []

    def dies_on_the_second_move(src: Path, dst: Path) -> None:
        if moved:
            raise Killed
        rename(src, dst)
        moved.append(dst)

    monkeypatch.setattr(applying.os, "rename", dies_on_the_second_move)
    journal = tmp_path / "journal.json"
    with pytest.raises(Killed):
        applying.execute(plan, corrected, journal)
    monkeypatch.undo()
    assert (image_folder / "_removed" / "green" / "green_2.png").is_file()  # half applied
    assert main(["apply", "--undo", str(journal)]) == 0
    assert tree_state(image_folder) == before


def test_undo_never_overwrites_a_file_written_at_the_old_path_after_apply(
    image_folder: Path, queue: Path, capsys: pytest.CaptureFixture
) -> None:
    decide(queue, {"green/green_2.png": "remove"})
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 0
    make_image(image_folder / "green" / "green_2.png", (1, 2, 3))  # the user's new file where the old one was
    after = tree_state(image_folder)
    (journal,) = journals(queue.parent)
    capsys.readouterr()
    assert main(["apply", "--undo", str(journal)]) == 2
    assert "cannot restore" in " ".join(capsys.readouterr().err.split())
    assert tree_state(image_folder) == after


def test_undo_keeps_a_corrected_manifest_edited_after_apply(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = report_from_data(tmp_path / "r", manifest, {"img/1.png": "dog"})
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--out", str(queue)]) == 0
    decide(queue, {"img/1.png": "relabel:dog"})
    assert main(["apply", str(queue), "--data", str(manifest)]) == 0
    corrected = manifest.with_name("train.corrected.csv")
    corrected.write_text(corrected.read_text() + "img/5.png,cat,z\n")  # the user's own edit
    edited = corrected.read_bytes()
    (journal,) = journals(tmp_path)
    capsys.readouterr()
    assert main(["apply", "--undo", str(journal)]) == 2
    assert "edited since apply wrote it" in " ".join(capsys.readouterr().err.split())
    assert corrected.read_bytes() == edited


def test_undo_of_a_file_that_is_not_a_whole_journal_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = tmp_path / "samples.json"
    other.write_text(json.dumps({"samples": []}))  # e.g. a FiftyOne export passed by mistake
    assert main(["apply", "--undo", str(other)]) == 2
    assert "not a labelaudit apply journal" in capsys.readouterr().err
    cut = tmp_path / "cut.json"
    cut.write_text('{"format": "labelaudit-apply-journal/1", "status": "appl')  # a journal cut short
    assert main(["apply", "--undo", str(cut)]) == 2
    assert "cannot read journal" in capsys.readouterr().err
    assert other.read_text() == json.dumps({"samples": []})


def test_two_applies_in_one_second_keep_both_journals(
    image_folder: Path, queue: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class OneSecond(datetime):
        @classmethod
        def now(cls, tz: timezone | None = None) -> datetime:  # type: ignore[override]
            return datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)

    monkeypatch.setattr(applying, "datetime", OneSecond)
    before = tree_state(image_folder)
    decide(queue, {"red/red_1.png": "relabel:blue"})
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 0
    decide(queue, {"green/green_2.png": "remove"})
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 0
    written = journals(queue.parent)
    assert len(written) == 2  # the second did not overwrite the first one's undo record
    for journal in written:
        assert main(["apply", "--undo", str(journal)]) == 0
    assert tree_state(image_folder) == before


def test_apply_refuses_a_manifest_path_outside_its_folder_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "ds"
    for i in range(4):
        make_image(data / "img" / f"{i}.png", (i * 60, 0, 0))
    make_image(tmp_path / "shared" / "x.png", (0, 90, 0))
    manifest = data / "train.csv"
    paths = [*(f"img/{i}.png" for i in range(4)), "../shared/x.png"]
    pd.DataFrame({"path": paths, "label": ["cat", "cat", "dog", "dog", "dog"]}).to_csv(manifest, index=False)
    spec = DataSpec(allow_outside_root=True)  # the audit was asked to read it
    report = report_from_data(tmp_path / "r", manifest, {"../shared/x.png": "cat"}, spec=spec)
    queue = tmp_path / "q.csv"
    assert main(["export", str(report), "--out", str(queue)]) == 0
    decide(queue, {"../shared/x.png": "relabel:cat"})

    assert main(["apply", str(queue), "--data", str(manifest)]) == 2
    assert "(../shared/x.png): path resolves outside the manifest folder" in " ".join(capsys.readouterr().err.split())
    assert not manifest.with_name("train.corrected.csv").exists()
    assert main(["apply", str(queue), "--data", str(manifest), "--allow-outside-root"]) == 0
    assert pd.read_csv(manifest.with_name("train.corrected.csv"))["label"].tolist()[-1] == "cat"


@pytest.mark.parametrize(("folder", "decision"), [("shared", "relabel:shared"), ("_removed", "remove")])
def test_a_folder_linked_outside_the_dataset_receives_no_file(
    image_folder: Path, queue: Path, tmp_path: Path, capsys: pytest.CaptureFixture, folder: str, decision: str
) -> None:
    """A class folder, or _removed/, that is a symbolic link to elsewhere would take the file out of the
    dataset (discovery skips such a folder as outside it): refused before anything moves."""
    elsewhere = tmp_path / "someone_elses_folder"
    elsewhere.mkdir()
    (image_folder / folder).symlink_to(elsewhere, target_is_directory=True)
    decide(queue, VALID, [{"sample_id": "green/green_2.png", "decision": decision}])
    refused(image_folder, queue, capsys, "(green/green_2.png):", "leads outside the dataset root")
    assert not any(elsewhere.iterdir())


def test_a_removed_relative_link_comes_back_with_undo(image_folder: Path, queue: Path) -> None:
    """A relative link inside the dataset moves as a link; from _removed/ it no longer resolves, so undo
    knows it by the text it holds and puts it back as it was."""
    alias = image_folder / "red" / "alias.png"
    alias.symlink_to("../green/green_0.png")
    decide(queue, {}, [{"sample_id": "red/alias.png", "decision": "remove"}])
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 0
    assert not alias.is_symlink() and (image_folder / "_removed" / "red" / "alias.png").is_symlink()
    (journal,) = journals(queue.parent)
    assert main(["apply", "--undo", str(journal)]) == 0
    assert alias.is_symlink() and os.readlink(alias) == "../green/green_0.png" and alias.is_file()
    assert not (image_folder / "_removed").exists()


def test_a_dangling_link_that_appears_at_a_target_while_applying_is_kept(
    image_folder: Path, queue: Path, tmp_path: Path
) -> None:
    """The check while moving counts a link as the check before it does, dangling or not."""
    decide(queue, {}, [{"sample_id": "red/red_1.png", "decision": "relabel:blue"}])
    plan, corrected = applying.plan_apply(queue, image_folder)
    link = image_folder / "blue" / "red_1.png"
    link.symlink_to(tmp_path / "nowhere.png")  # made after the check, before the move
    with pytest.raises(LabelAuditError, match="rolled back"):
        applying.execute(plan, corrected, tmp_path / "journal.json")
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "nowhere.png")
    assert (image_folder / "red" / "red_1.png").is_file()


def test_undo_never_replaces_a_link_made_at_the_old_path_after_apply(
    image_folder: Path, queue: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    decide(queue, {"green/green_2.png": "remove"})
    assert main(["apply", str(queue), "--data", str(image_folder)]) == 0
    link = image_folder / "green" / "green_2.png"
    link.symlink_to(tmp_path / "nowhere.png")  # the user's link where the old file was, its target gone
    (journal,) = journals(queue.parent)
    capsys.readouterr()
    assert main(["apply", "--undo", str(journal)]) == 2
    assert "cannot restore" in " ".join(capsys.readouterr().err.split())
    assert link.is_symlink() and (image_folder / "_removed" / "green" / "green_2.png").is_file()
