"""The Python API, in the scikit-learn / PyOD spirit: fit on normal video, score, predict.

    from stvad.api import Detector

    det = Detector.fit("videos/normal/", out="runs/cam1", preset="cpu", max_steps=3000)
    result = det.score("videos/today.mp4", maps=True)  # per-frame scores (and pixel maps)
    for frame, score in result:
        ...
    labels = det.predict("videos/today.mp4")           # 1/0 per frame from the threshold, -1 = unscored
    det = Detector.load("runs/cam1")                    # later, or on another machine

``fit`` trains the GAN (:func:`stvad.train.train`) and then fits the alarm threshold on held-out normal
clips (:func:`stvad.calibration.calibrate`): never on test data. Scoring runs frames once through the
cached streaming path of :mod:`stvad.stream`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from stvad._io import atomic_open, atomic_write_json, atomic_write_text, check_writable
from stvad.config import SECTIONS, Config
from stvad.config import preset as preset_config
from stvad.data.sources import FrameSource, list_images, open_source
from stvad.engine import WindowEngine, run_folder, score_frames
from stvad.errors import StvadError
from stvad.scoring import causal_mean
from stvad.stream import load_engine

Source = str | os.PathLike | int | FrameSource
UNSCORED = -1  # Detector.predict's label for a frame without a score


@dataclass
class FrameScores:
    """Scores of one video: ``score[k]`` is the raw score of frame ``frame[k]`` (higher = more anomalous).

    The first T frames have no score: the model needs T frames before the one it judges.
    """

    name: str
    path: str
    frame: np.ndarray  # (n,) int frame numbers
    score: np.ndarray  # (n,) raw scores of ``variant``
    variant: str
    frames_read: int  # frames in the video, including the first T
    threshold: float | None = None  # the run's calibrated threshold, when fitted
    fps: float | None = None
    maps: np.ndarray | None = None  # (n, H, W) float16 pixel maps at model resolution, on request

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self.frame.tolist(), self.score.tolist())

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def anomalous(self) -> np.ndarray | None:
        """(n,) bool: score above the threshold; None without a calibrated threshold."""
        return None if self.threshold is None else self.score > self.threshold

    @property
    def time(self) -> np.ndarray | None:
        """(n,) seconds from the start of the video; None when its frame rate is unknown."""
        return None if not self.fps else self.frame / self.fps

    def records(self) -> list[dict[str, Any]]:
        """One dict per scored frame: frame, time (when known), score, anomalous (when calibrated)."""
        cols: dict[str, list] = {"frame": self.frame.tolist()}
        if self.time is not None:
            cols["time"] = [round(t, 4) for t in self.time.tolist()]
        cols["score"] = self.score.tolist()
        if self.anomalous is not None:
            cols["anomalous"] = self.anomalous.astype(int).tolist()
        return [dict(zip(cols, row)) for row in zip(*cols.values())]

    def to_csv(self, path: str | os.PathLike) -> None:
        rows = self.records()
        buf = io.StringIO()
        fields = ["frame", "time", "score", "anomalous"]
        writer = csv.DictWriter(buf, [f for f in fields if not rows or f in rows[0]], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())

    def to_json(self, path: str | os.PathLike) -> None:
        atomic_write_json(
            path,
            {
                "name": self.name,
                "source": self.path,
                "variant": self.variant,
                "threshold": self.threshold,
                "fps": self.fps,
                "frames": self.frames_read,
                "scores": self.records(),
            },
        )

    def save_maps(self, path: str | os.PathLike) -> None:
        """Frame numbers, scores and pixel maps as a compressed .npz (keys frame, score, maps)."""
        if self.maps is None:
            raise StvadError("no maps to save: score with maps=True", path)
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, frame=self.frame, score=self.score, maps=self.maps)


def _apply(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Set config fields named bare (``max_steps=``), or as ``section__field`` when a name is ambiguous."""
    owners: dict[str, list[str]] = {}
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(cfg, section)):
            owners.setdefault(f.name, []).append(section)
    for key, value in overrides.items():
        if "__" in key:
            dotted = key.replace("__", ".", 1)
        elif len(owners.get(key, [])) == 1:
            dotted = f"{owners[key][0]}.{key}"
        elif key in owners:
            raise StvadError(
                f"'{key}' is ambiguous: write it as one of {', '.join(s + '__' + key for s in owners[key])}"
            )
        else:
            raise StvadError(
                f"unknown setting '{key}' (a field of the config sections {', '.join(SECTIONS)})"
            )
        cfg.set(dotted, value, source="Detector.fit")
    return cfg


def training_root(train_source: str | os.PathLike | Sequence[str | os.PathLike], out: Path) -> Path:
    """A benchmark root to train on: the folder itself when it is one, else OUT/data in the ``folder``
    layout, whose train/ links to the given videos (video files or frame folders). An OUT/data left by an
    earlier call for the same run (a resumed training) is reused."""
    from stvad.data.layouts import detect_layout

    items = [train_source] if isinstance(train_source, (str, os.PathLike)) else list(train_source)
    if not items:
        raise StvadError("no training videos given")
    root, train = out / "data", out / "data" / "train"
    if len(items) == 1 and Path(items[0]).is_dir() and not list_images(items[0]):
        with contextlib.suppress(StvadError):
            detect_layout(items[0])
            return Path(items[0])
    if train.exists() or train.is_symlink():
        if (out / "config.json").exists():  # the run was started on these links: reuse them (a resume)
            return root
        shutil.rmtree(root)  # links left by a run that failed before it began; rmtree follows no link
    if len(items) == 1 and Path(items[0]).is_dir() and not list_images(items[0]):
        # not a benchmark: a folder of normal videos and frame folders becomes the training split
        root.mkdir(parents=True)
        train.symlink_to(Path(items[0]).resolve(), target_is_directory=True)
        return root
    paths = [Path(open_source(item).path).resolve() for item in items]  # all readable before writing
    train.mkdir(parents=True)
    for i, path in enumerate(paths):
        (train / f"{i:03d}_{path.name}").symlink_to(path, target_is_directory=path.is_dir())
    return root


class Detector:
    """A trained video anomaly detector: per-frame scores, pixel maps and 0/1 predictions."""

    def __init__(self, engine: WindowEngine, run: Path | None = None, batch_size: int = 16):
        self.engine = engine
        self.run = run
        self.batch_size = batch_size

    @classmethod
    def fit(
        cls,
        train_source: str | os.PathLike | Sequence[str | os.PathLike],
        out: str | os.PathLike,
        preset: str = "cpu",
        calibrate: bool = True,
        progress: bool = True,
        **overrides: Any,
    ) -> Detector:
        """Train on normal video and fit the threshold on held-out normal clips.

        ``train_source``: a benchmark root (any layout of :mod:`stvad.data.layouts`, its training split is
        used), a folder of normal videos or frame folders, or a list of video files / frame folders.
        ``overrides`` set config fields by name, e.g. ``max_steps=3000, size=(128, 128)``.
        """
        from stvad.calibration import calibrate as fit_threshold
        from stvad.train import train

        out = Path(out)
        cfg = _apply(preset_config(preset), overrides)
        if out.exists() and any(out.iterdir()):
            raise StvadError("is not empty: fit writes a new run, choose another out", out)
        run = train(training_root(train_source, out), out, cfg, progress=progress)
        if calibrate:
            fit_threshold(run, progress=progress)
        return cls.load(run)

    @classmethod
    def load(
        cls,
        run: str | os.PathLike,
        backend: str = "torch",
        device: str = "cpu",
        which: str = "best",
        batch_size: int = 16,
    ) -> Detector:
        """A trained run (its folder or a checkpoint; for ``backend="onnxruntime"`` also an .onnx file)."""
        engine = load_engine(run, backend=backend, device=device, which=which)
        folder = None if Path(run).suffix == ".onnx" else run_folder(run)
        return cls(engine, folder, batch_size)

    @property
    def config(self) -> Config:
        return self.engine.cfg

    @property
    def threshold(self) -> float | None:
        cal = self.engine.calibration
        return None if cal is None else float(cal["threshold"])

    def calibrate(self, quantile: float | None = None, progress: bool = False) -> dict:
        """(Re)fit the threshold on the run's held-out normal clips and store it in the run."""
        from stvad.calibration import alarm_config, calibrate

        if self.run is None:
            raise StvadError("calibration needs the run folder, not an exported model")
        self.engine.calibration = calibrate(self.run, quantile=quantile, progress=progress)
        self.engine.cfg = alarm_config(self.engine.cfg, self.engine.calibration)
        return self.engine.calibration

    def score(self, source: Source, maps: bool = False, progress: bool = False) -> FrameScores:
        """Per-frame scores of a video file or frame folder (and its pixel maps with ``maps=True``); with
        ``progress`` a progress bar of the frames scored."""
        src = source if isinstance(source, FrameSource) else open_source(source)
        if getattr(src, "live", False):
            raise StvadError(
                "a live stream never ends: watch it with stvad.stream.watch or `stvad watch`", src.path
            )
        cfg = self.config.data
        frames = src.frames(cfg.size, cfg.channels)
        if progress:
            total = None if getattr(src, "live", False) else len(src)
            frames = tqdm(frames, total=total, desc=f"scoring {src.name}", unit="frame", leave=False)
        with self.engine.whole_source(src):  # the still term against the file's own median, as eval scores
            scored = score_frames(self.engine, frames, keep_maps=maps, chunk=self.batch_size, name=src.name)
        n = scored.frames_read
        if n <= self.engine.T:
            raise StvadError(
                f"only {n} frames: a score needs T = {self.engine.T} frames before the one judged, so at "
                f"least {self.engine.T + 1}",
                src.path,
            )
        return FrameScores(
            name=src.name,
            path=src.path,
            frame=scored.index,
            # raw scores, or their causal mean when the alarms were calibrated with one
            score=causal_mean(scored.scores[self.engine.variant], self.config.score.causal_window),
            variant=self.engine.variant,
            frames_read=n,
            threshold=self.threshold,
            fps=getattr(src, "fps", None),
            maps=scored.own_maps,
        )

    def predict(self, source: Source) -> np.ndarray:
        """int8 (frames,) labels from the calibrated threshold: 1 = anomalous, 0 = normal, and UNSCORED (-1)
        for the first T frames, which have no prediction (the model needs T frames before one it judges)."""
        if self.threshold is None:
            raise StvadError("no calibrated threshold in this run: call Detector.calibrate() first", self.run)
        result = self.score(source)
        labels = np.full(result.frames_read, UNSCORED, np.int8)
        labels[result.frame] = result.anomalous
        return labels


def score_to_files(
    run: str | os.PathLike,
    inputs: Sequence[Source],
    out: str | os.PathLike = "scores",
    maps: bool = False,
    video: str | None = None,
    backend: str = "torch",
    device: str = "cpu",
    progress: bool = False,
) -> list[dict[str, str]]:
    """``stvad score``: per input OUT/NAME.csv and .json, with ``maps`` NAME.maps.npz, with ``video``
    ("avi" or "mp4") the overlay video NAME.overlay.EXT. Returns the files written, per input."""
    from stvad.report.video import CODECS, write_overlay_video

    if video is not None and f".{video}" not in CODECS:
        raise StvadError(f"the overlay video must be {' or '.join(c[1:] for c in CODECS)}, got '{video}'")
    check_writable(out, folder=True)
    det = Detector.load(run, backend=backend, device=device)
    sources = [s if isinstance(s, FrameSource) else open_source(s) for s in inputs]  # bad inputs fail first
    names = [s.name for s in sources]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise StvadError(
            f"several inputs are named {', '.join(twice)}: their outputs would collide; score them apart"
        )
    out = Path(out)
    written = []
    for src in sources:
        result = det.score(src, maps=maps or video is not None, progress=progress)
        files = {"csv": out / f"{src.name}.csv", "json": out / f"{src.name}.json"}
        result.to_csv(files["csv"])
        result.to_json(files["json"])
        if maps:
            files["maps"] = out / f"{src.name}.maps.npz"
            result.save_maps(files["maps"])
        if video is not None:
            files["video"] = out / f"{src.name}.overlay.{video}"
            write_overlay_video(
                files["video"], iter(src), result.frame, result.score, result.maps, result.frames_read,
                threshold=result.threshold, fps=result.fps,
            )  # fmt: skip
        written.append({k: str(v) for k, v in files.items()})
    return written
