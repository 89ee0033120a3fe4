"""The façade, ``curator.Project``: each verb on the bundled clip, with the classic backbone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "curator" / "data" / "sample.mp4"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import curator

    root = tmp_path_factory.mktemp("project")
    notices: list[str] = []
    opened = curator.open(root / "home", backbone="classic", propagator="flow", notice=notices.append)
    project = opened.project("street")
    report = project.ingest(SAMPLE, fps=2)
    assert len(report.results) == 1 and report.results[0].frames == 20
    yield opened, project, root
    opened.close()


def test_projects_and_unknown_names(home) -> None:  # type: ignore[no-untyped-def]
    from curator.store.repo import NotFoundError

    opened, project, _ = home
    assert [(p.id, p.name, p.videos, p.frames) for p in opened.projects()] == [(project.id, "street", 1, 20)]
    with pytest.raises(NotFoundError, match="street"):
        opened.project("nope", create=False)  # the message lists the projects there are
    assert opened.project_by_id(project.id).name == "street"


def test_select_queues_with_the_default_selector(home) -> None:  # type: ignore[no-untyped-def]
    _, project, _ = home
    result = project.select(3)
    assert result.strategy == "curator"  # Settings.selector
    assert len(result.picks) == 3 and all(p.task_id is not None for p in result.picks)
    counts = project.tasks()
    assert counts["open"] >= 3
    again = project.select(3, "uniform", queue=False)
    assert len(again.picks) == 3 and all(p.task_id is None for p in again.picks)
    assert project.tasks() == counts  # --no-queue stores the selection only


def test_claim_submit_release_and_bad_masks(home) -> None:  # type: ignore[no-untyped-def]
    from curator.labels import InvalidMaskError

    _, project, _ = home
    project.select(2, "uniform")
    lease = project.claim(1)[0]
    image = project.image(lease.frame_id)
    h, w = image.shape[:2]
    with pytest.raises(InvalidMaskError, match="shape"):
        project.submit(lease.id, {1: np.ones((h + 1, w), bool)})
    with pytest.raises(InvalidMaskError, match=r"1\.\.255"):
        project.submit(lease.id, {0: np.ones((h, w), bool)})
    with pytest.raises(LookupError, match="not leased"):
        project.submit(lease.id, {1: np.ones((h, w), bool)}, owner=99)  # someone else's lease
    labels = np.zeros((h, w), np.int64)
    labels[: h // 2] = 1
    labels[h // 2 :, : w // 2] = 2
    assert project.submit(lease.id, labels) == 2
    stored = project.masks(lease.frame_id)
    assert [(m["object_id"], m["source"]) for m in stored] == [(1, "human"), (2, "human")]
    assert np.array_equal(stored[0]["mask"], labels == 1) and np.array_equal(stored[1]["mask"], labels == 2)
    with pytest.raises(LookupError):
        project.submit(lease.id, labels)  # done already
    other = project.claim(1)[0]
    assert project.release(other.id) is True
    assert project.release(other.id) is False


def test_near_duplicates_of_another_video(home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, project, _ = home
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(SAMPLE, copy)
    with copy.open("ab") as f:
        f.write(b"\0" * 16)  # another file (another hash) with the same pictures
    report = project.ingest(copy, fps=2)
    (result,) = report.results
    dup = report.near_duplicates[result.video_id]
    assert dup.checked == 20 and dup.count == 20
    assert all(sim >= 0.98 for _, _, sim in dup.examples)
    # and the first video's frames are not duplicates of each other's video... only of the copy
    similar = project.similar(dup.examples[0][0], k=3)
    assert similar[0][0] == dup.examples[0][1] and similar[0][1] >= 0.98


def test_export_import_round_trip(home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pycocotools.coco import COCO

    _, project, _ = home
    lease = project.claim(1)[0]
    h, w = project.image(lease.frame_id).shape[:2]
    mask = np.zeros((h, w), bool)
    mask[10:40, 20:90] = True
    project.submit(lease.id, {3: mask})
    exported = project.export("coco", dest=tmp_path, images=False)
    coco = COCO(str(exported))
    assert {a["object_id"] for a in coco.anns.values()} >= {1, 2, 3}
    # a second project takes the same masks from the COCO file
    fresh = project.home.project("copy-of-street")
    fresh.ingest(SAMPLE, fps=2)
    report = fresh.import_masks(exported)
    assert report.unmatched == [] and report.frames == len(coco.imgs)
    again = fresh.export("coco", dest=tmp_path / "again.json", images=False)
    a = json.loads(exported.read_text())["annotations"]
    b = json.loads(again.read_text())["annotations"]
    assert sorted((x["object_id"], x["segmentation"]["counts"]) for x in a) == sorted(
        (x["object_id"], x["segmentation"]["counts"]) for x in b
    )
    assert fresh.tasks()["total"] == 0  # imported labels need no tasks


def test_import_davis_folder_and_propagate(home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from curator.labels import InvalidMaskError

    _, project, _ = home
    video = project.videos()[0]
    frames = project.frames(video["id"])
    assert len(frames) == 20 and [f["frame_index"] for f in frames] == sorted(f["frame_index"] for f in frames)
    frame_index, h, w = frames[0]["frame_index"], frames[0]["height"], frames[0]["width"]
    labels = np.zeros((h, w), np.uint8)
    labels[20:60, 30:100] = 255  # DAVIS-2016 grey mask: one object
    folder = tmp_path / "masks" / video["filename"].rsplit(".", 1)[0]
    folder.mkdir(parents=True)
    Image.fromarray(labels).save(folder / f"{frame_index:05d}.png")
    report = project.import_masks(tmp_path / "masks")
    assert (report.frames, report.masks) == (1, 1)
    Image.fromarray(np.zeros((h + 1, w), np.uint8)).save(folder / f"{frames[1]['frame_index']:05d}.png")
    with pytest.raises(InvalidMaskError):
        project.import_masks(tmp_path / "masks")  # one bad mask and nothing is stored
    results = project.propagate(video["id"])
    assert results[0]["propagator"] == "flow" and results[0]["frames"] > 0
    assert project.jobs() == []  # library calls run in process, not as service jobs
