"""The evaluation report: a Table-1-style metrics table and one offline HTML page with every figure.

The page has no external scripts, styles or fonts; figures are PNG files beside it, referenced by
relative paths, so the folder can be copied or opened from disk as it is.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stvad._io import atomic_write_text
from stvad.report.overlay import TopFrame, plot_top_frames
from stvad.report.plots import plot_roc, plot_timeline, plot_training_health

Results = dict[str, dict[str, dict[str, Any]]]  # variant -> normalisation -> metric name -> value

NORMALISATION_NOTE = (
    "Normalisations: <b>none</b> (raw scores); <b>global-max</b> (equation 6, one positive factor for the "
    "whole test set, so its micro AUROC always equals that of <b>none</b>); <b>per-video-minmax</b> (each "
    "video scaled to [0, 1] on its own, the FFP/MNAD convention). The macro AUROC is the mean of per-video "
    "AUROCs, which no per-video rescaling changes, so one column serves all three; videos with a single "
    "class are left out of that mean."
)

ROC_NOTE = "All test frames pooled, scores normalised as in the timelines."
HEALTH_NOTE = (
    "Left: how well the discriminator ranks held-out normal frames above the generator's predictions of them "
    "at each validation (0.5 = chance, a discriminator that has learned nothing). Right: the generator's "
    "validation PSNR over the floor of predicting each frame as the previous one (below 0 = worse than "
    "copying). Both on the held-out tail of each normal training video."
)
TOP_NOTE = (
    "Left: the frame; right: the anomaly map of the full method (JET, one scale for all panels) blended "
    "over it; white outline: the ground-truth mask where the benchmark has one."
)


def _pct(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}"


def table_markdown(results: Results, primary: str = "per-video-minmax") -> str:
    """Table 1 of the paper, in Markdown: rows = variants; metrics as percentages with one decimal.

    Columns: micro AUROC under each normalisation present in ``results`` (``none`` left out beside
    ``global-max``: one scale for all frames cannot change a pooled AUROC, so the two columns are always
    equal), macro AUROC (identical under every normalisation, see :func:`stvad.metrics.auroc_macro`), then
    AUPR and EER under ``primary`` (the first normalisation present if ``primary`` is not).
    """
    if not results:
        return ""
    norms = list(next(iter(results.values())))
    if "global-max" in norms and "none" in norms:
        norms.remove("none")
    main = primary if primary in norms else norms[0]
    header = ["variant", *(f"micro AUROC {n}" for n in norms), "macro AUROC", f"AUPR {main}", f"EER {main}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant, by_norm in results.items():
        m = by_norm[main]
        cells = [variant, *(_pct(by_norm[n]["auroc_micro"]) for n in norms), _pct(m["auroc_macro"])]
        cells += [_pct(m["aupr"]), _pct(m["eer"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table_html(table: str) -> str:
    """Markdown as written by ``stvad eval`` -> HTML: each run of pipe lines becomes a <table> (first row =
    header), every other non-empty line a paragraph, so the extra tables (smoothed, by anomaly type) stay
    separate tables with their captions."""
    parts: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            head = "".join(f"<th>{c}</th>" for c in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            rows.clear()

    for line in table.strip().splitlines():
        line = line.strip()
        if line.startswith("|"):
            if not re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*", line):
                rows.append([html.escape(c.strip()) for c in line.strip("|").split("|")])
            continue
        flush()
        if line:
            parts.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "".join(parts)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]


def _figure(title: str, name: str, alt: str, note: str) -> str:
    """A report section: heading, the figure figures/NAME and its note."""
    return f"<h2>{html.escape(title)}</h2>" + _img(f"figures/{name}", alt) + f"<p class='note'>{note}</p>"


def _img(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'


STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #eee; }
img { max-width: 100%; }
figure { margin: 0.5em 0; }
.note { font-size: 0.9em; color: #444; max-width: 60em; }
.headline { font-size: 1.15em; }
"""


def write_report(
    out_dir: str | os.PathLike,
    names: Sequence[str],
    scores: dict[str, Sequence[np.ndarray]],
    labels: Sequence[np.ndarray] | None = None,
    primary: str = "full",
    threshold: float | None = None,
    first_frames: int | Sequence[int] = 0,
    top: Sequence[TopFrame] = (),
    table: str | None = None,
    protocol: dict[str, Any] | None = None,
    title: str = "stvad evaluation report",
    health: Sequence[dict[str, float]] = (),
    headline: Sequence[str] = (),
    roc_scores: dict[str, Sequence[np.ndarray]] | None = None,
) -> Path:
    """Write ``out_dir/index.html`` and its figures under ``out_dir/figures``; returns the HTML path.

    ``names[v]`` names test video v; ``scores[variant][v]`` are its frame scores as they should be shown
    (already normalised; ``threshold`` on the same scale), ``labels[v]`` the 0/1 ground truth of the same
    frames or None. ``first_frames`` is the frame number of each video's first score (T when the first T
    frames have no prediction). Timelines show ``primary``; the ROC plot shows every variant (labels only).
    ``top`` are the most anomalous frames with their maps (see :func:`stvad.report.overlay.top_frames`),
    ``table`` the Markdown metrics table, ``protocol`` key/value details of how the numbers were made,
    ``health`` the validation rows of the run's metrics.csv (step, val_d_auc, val_d_pixel_auc, val_psnr,
    val_psnr_copy_last), drawn as training curves. ``headline`` lines open the page (the protocol closes
    it); ``roc_scores`` are the scores of the ROC plot when they are not ``scores`` (normalised as the
    headline is, so the legend's AUROCs are the headline's).
    """
    out = Path(out_dir)
    fig_dir = out / "figures"
    firsts = [first_frames] * len(names) if isinstance(first_frames, int) else list(first_frames)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if headline:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in headline)
        parts.append(f"<ul class='headline'>{items}</ul>")
    if table:
        parts.append(
            f"<h2>Metrics (%)</h2>{markdown_table_html(table)}<p class='note'>{NORMALISATION_NOTE}</p>"
        )
    if labels is not None:
        plot_roc(fig_dir / "roc.png", roc_scores or scores, labels)
        parts.append(_figure("ROC curves", "roc.png", "ROC curves of the score variants", ROC_NOTE))
    if top:
        plot_top_frames(fig_dir / "top_frames.png", top)
        alt = "most anomalous frames with their anomaly maps"
        parts.append(_figure("Most anomalous frames", "top_frames.png", alt, TOP_NOTE))
    if health:
        plot_training_health(fig_dir / "training.png", health)
        alt = "discriminator AUROCs and generator PSNR over training"
        parts.append(_figure("Training", "training.png", alt, HEALTH_NOTE))

    parts.append(f"<h2>Score timelines ({html.escape(primary)})</h2>")
    for v, name in enumerate(names):
        src = f"figures/timeline_{v:03d}_{_slug(name)}.png"
        plot_timeline(
            out / src,
            scores[primary][v],
            None if labels is None else labels[v],
            threshold,
            title=f"video {name}",
            first_frame=firsts[v],
        )
        parts.append(f"<figure>{_img(src, f'score timeline of video {name}')}</figure>")

    if protocol:
        cells = ((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in protocol.items())
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in cells)
        parts.append(f"<h2>Protocol</h2><table>{rows}</table>")

    page = (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    index = out / "index.html"
    atomic_write_text(index, page)
    return index
