import re

import cv2
import numpy as np
import pytest

from stvad.metrics import evaluate_scores
from stvad.report import (
    TopFrame,
    markdown_table_html,
    overlay,
    plot_roc,
    plot_timeline,
    table_markdown,
    top_frames,
    write_report,
)
from stvad.report.plots import intervals


def _png_size(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"{path} is not a readable image"
    return img.shape[1], img.shape[0]


def _videos(rng, n=3):
    names, scores, labels = [], {"full": [], "only-stn": []}, []
    for v in range(n):
        y = np.zeros(40, np.uint8)
        y[10 + v : 20 + v] = 1
        names.append(f"{v + 1:02d}")
        scores["full"].append(rng.random(40) + y)
        scores["only-stn"].append(rng.random(40) + 0.3 * y)
        labels.append(y)
    return names, scores, labels


def test_intervals():
    assert intervals(np.array([1, 1, 0, 0, 1, 0, 1])) == [(0, 2), (4, 5), (6, 7)]
    assert intervals(np.zeros(4)) == []


@pytest.mark.parametrize("with_labels", [True, False])
def test_timeline_png(tmp_path, with_labels):
    y = np.r_[np.zeros(10), np.ones(5), np.zeros(10)]
    plot_timeline(
        tmp_path / "t.png", np.linspace(0, 1, 25), y if with_labels else None, 0.5, "v", first_frame=4
    )
    assert _png_size(tmp_path / "t.png") == (800, 250)


def test_roc_png(tmp_path):
    _, scores, labels = _videos(np.random.default_rng(0))
    plot_roc(tmp_path / "roc.png", scores, labels)
    assert _png_size(tmp_path / "roc.png") == (500, 600)


def test_overlay_colours_the_map_and_outlines_the_mask():
    frame = np.full((32, 48, 1), 128, np.uint8)
    amap = np.zeros((8, 12), np.float32)  # smaller than the frame: resized to it
    amap[:, 6:] = 1.0
    mask = np.zeros((32, 48), bool)
    mask[8:24, 4:20] = True
    out = overlay(frame, amap, mask)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    left, right = out[4, 2].astype(int), out[4, 45].astype(int)
    assert left[2] > left[0]  # low map -> blue end of JET
    assert right[0] > right[2]  # high map -> red end of JET
    assert tuple(out[8, 10]) == (255, 255, 255)  # on the mask's top edge
    assert tuple(out[16, 10]) != (255, 255, 255)  # inside the mask, no outline
    assert np.array_equal(overlay(frame, amap), overlay(frame[..., 0], amap))


def test_top_frames_picks_the_highest_apart():
    scores = [np.array([0.1, 0.9, 0.85, 0.2, 0.3]), np.array([0.5, 0.95])]
    # 0.85 (next to 0.9) and 0.5 (next to 0.95) are skipped as too close to a chosen frame
    assert top_frames(scores, k=3, min_gap=2) == [(1, 1), (0, 1), (0, 4)]
    assert top_frames(scores, k=3, min_gap=1) == [(1, 1), (0, 1), (0, 2)]
    assert len(top_frames(scores, k=10, min_gap=1)) == 7


def test_table_markdown_formats_percentages():
    m = {"auroc_micro": 0.8751, "auroc_macro": 0.5, "aupr": 5 / 6, "eer": 0.25}
    results = {"full": {"none": m, "per-video-minmax": {**m, "auroc_micro": 0.9}}, "only-stn": {"none": m}}
    results["only-stn"]["per-video-minmax"] = {**m, "auroc_macro": float("nan")}
    table = table_markdown(results)
    lines = table.strip().splitlines()
    assert lines[0] == (
        "| variant | micro AUROC none | micro AUROC per-video-minmax | macro AUROC | AUPR per-video-minmax "
        "| EER per-video-minmax |"
    )
    assert lines[2] == "| full | 87.5 | 90.0 | 50.0 | 83.3 | 25.0 |"
    assert lines[3] == "| only-stn | 87.5 | 87.5 | n/a | 83.3 | 25.0 |"
    html = markdown_table_html(table)
    assert html.count("<tr>") == 3 and "<th>variant</th>" in html and "<td>83.3</td>" in html
    assert "---" not in html
    two = markdown_table_html(table + "\nWith smoothing <b>:\n\n" + table)
    assert two.count("<table>") == 2 and two.count("<tr>") == 6
    assert "<p>With smoothing &lt;b&gt;:</p>" in two
    # beside global-max, the 'none' column would only repeat it: a single scale cannot move a pooled AUROC
    both = {"full": {"global-max": m, "none": m, "per-video-minmax": m}}
    assert "micro AUROC none" not in table_markdown(both) and "micro AUROC global-max" in table_markdown(both)


@pytest.mark.parametrize("with_labels", [True, False])
def test_write_report(tmp_path, with_labels):
    rng = np.random.default_rng(0)
    names, scores, labels = _videos(rng)
    frame = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
    top = [
        TopFrame(names[v], 4 + j, float(scores["full"][v][j]), frame, rng.random((8, 8)))
        for v, j in top_frames(scores["full"], k=4)
    ]
    if with_labels:
        top[0].mask = np.ones((24, 32), bool)
    table = table_markdown(evaluate_scores(scores, labels)) if with_labels else None
    index = write_report(
        tmp_path / "rep",
        names,
        scores,
        labels if with_labels else None,
        threshold=0.8,
        first_frames=4,
        top=top,
        table=table,
        protocol={"dataset": "synthetic", "frames dropped per video": 4, "sigma": [0, 3]},
        headline=["full score: frame-level micro AUROC 90.0"],
        health=[
            {"step": s, "val_d_auc": a, "val_d_pixel_auc": b, "val_psnr": 33 + g, "val_psnr_copy_last": 33}
            for s, a, b, g in ((100, 0.6, 0.7, 0.1), (200, 0.8, 0.9, 0.4))
        ],
    )
    text = index.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', text)
    on_disk = sorted(p.relative_to(index.parent).as_posix() for p in (index.parent / "figures").glob("*.png"))
    assert sorted(srcs) == on_disk
    assert len([s for s in srcs if "timeline" in s]) == len(names)
    assert ("figures/roc.png" in srcs) == with_labels and "figures/top_frames.png" in srcs
    assert "figures/training.png" in srcs and _png_size(index.parent / "figures/training.png") == (800, 300)
    for s in srcs:
        w, h = _png_size(index.parent / s)
        assert w > 100 and h > 100
    assert _png_size(index.parent / srcs[-1]) == (800, 250)
    assert ("<table><thead><tr><th>variant</th>" in text) == with_labels
    assert "frames dropped per video" in text
    assert text.index("<h2>Protocol</h2>") > text.index("<h2>Score timelines")  # results first, protocol last
    assert "class='headline'" in text and text.index("headline") < text.index("<h2>")
    assert not re.search(r"(src|href)=\"(https?:|//)", text) and "<script" not in text
