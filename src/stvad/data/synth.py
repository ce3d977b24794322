"""The built-in procedural surveillance benchmark: a fixed camera over a footpath, in the FFP layout.

``generate(out, seed, size)`` writes

    OUT/training/frames/NN/NNN.png   normal walking only (grey PNG, one channel)
    OUT/testing/frames/NN/NNN.png    normal walking plus anomalies
    OUT/testing/masks/NN/NNN.png     uint8 per-frame pixel masks, 255 = anomalous
    OUT/synth.mat                    cell ``gt`` of 1-based inclusive [start; end] columns, as FFP's ped2.mat
    OUT/events.json                  one record per anomaly: video, type, start, end (0-based), motion_only

Frame labels are "any pixel set" in the masks, and the ``gt`` intervals are those labels, so all three
agree by construction. The scene (``synth_scene``) has perspective, a textured ground, static structures,
sensor noise, slow illumination drift and sun shadows; people walk with an articulated gait at varied
heights, shades and speeds, enter, leave, cross and occlude one another. The anomalies are running and
jumping (motion-only: a normal-looking person moving abnormally), falling, tossing an object, a bicycle,
a motor cart and a bag left behind. Everything is drawn from one seed: the same seed gives the same bytes.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from stvad._io import atomic_open, atomic_write_json
from stvad.data.synth_actors import (
    ANOMALOUS_ACTIONS,
    FPS,
    GRAVITY,
    WRIST_R,
    Action,
    Actor,
    Cart,
    Cyclist,
    LeftBag,
    Pedestrian,
    Route,
    in_picture,
    random_look,
    random_route,
    throw_frames,
    walking_speed,
    well_inside,
)
from stvad.data.synth_events import GENERATOR, synth_meta
from stvad.data.synth_scene import SHADOW_DARKNESS, Camera, Painter, Structure, build_background
from stvad.errors import StvadError

PREROLL = 220  # frames simulated before frame 0, so every video opens on a populated scene
EVENT_TYPES = ("run", "jump", "fall", "throw", "bicycle", "cart", "left_object")
MOTION_ONLY = {"run", "jump"}
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Size:
    height: int
    width: int
    train_videos: int
    train_frames: int
    test_videos: int
    test_frames: int
    events_per_video: int


SIZES = {
    "small": Size(48, 48, 2, 40, 4, 80, 2),
    "default": Size(128, 128, 6, 200, 6, 200, 3),
    "large": Size(192, 192, 12, 300, 12, 300, 4),
}


# ---------------------------------------------------------------- one video


@dataclass
class VideoPlan:
    name: str
    n_frames: int
    actors: list[Actor]
    events: list[dict]  # type, motion_only; start/end come from the rendered masks
    gain: tuple[float, float, float, float]  # illumination: base, amplitude, period (frames), phase
    noise: float  # sensor noise sigma, grey levels


def _occupancy_target(rng: np.random.Generator, n: int) -> np.ndarray:
    """How many people the scene holds over time: a slow random wave, different in every video."""
    t = np.arange(-PREROLL, n)
    wave = sum(np.sin(2 * np.pi * t / rng.uniform(80, 300) + rng.uniform(0, 2 * np.pi)) for _ in range(3))
    wave /= np.sqrt(1.5)
    return np.clip(np.rint(rng.uniform(1.5, 3.0) + 1.0 * wave), 1, 4).astype(int)


def _event_starts(rng: np.random.Generator, n: int, kinds: list[str]) -> list[int]:
    """Spread the anomalies over the video: one per equal slot, at a random time within its slot."""
    first, last = 8, n - 10
    slot = (last - first) / max(len(kinds), 1)
    starts = []
    for j, kind in enumerate(kinds):
        lo = first + j * slot
        if kind == "left_object":  # stays to the end: put it down late, so it is one event among several
            starts.append(int(max(lo, n - rng.integers(40, 60))))
        else:
            starts.append(int(lo + rng.uniform(0, max(slot - 50, 1))))
    return starts


def _action_for(rng: np.random.Generator, kind: str, t: int) -> Action:
    if kind == "run":
        # a sprint: at least 3x the fastest walker (1.6 m/s), so at least 3x as fast in the picture too
        return Action("run", t, 10**6, {"speed": float(rng.uniform(4.8, 6.2))})
    if kind == "jump":
        height = float(rng.uniform(0.5, 0.8))
        period = int(np.ceil(2 * np.sqrt(2 * height / GRAVITY) * FPS)) + 2  # flight plus crouching
        return Action("jump", t, period * int(rng.integers(3, 6)), {"period": period, "height": height})
    if kind == "fall":
        return Action("fall", t, int(rng.integers(28, 40)))
    flight = int(rng.integers(9, 12))
    params = {"flight": flight, "radius": float(rng.uniform(0.17, 0.22)), "shade": int(rng.choice([15, 245]))}
    return Action("throw", t, throw_frames(flight, int(rng.integers(2, 4))), params)


def _convert_walker(
    rng: np.random.Generator, kind: str, t: int, actors: list[Actor]
) -> tuple[int, Pedestrian] | None:
    """Pick a walker in the middle of the picture at frame t who will run, jump, fall or throw from now.

    Anomalies by people already in the scene keep the number of people independent of the labels, so a
    frame's content alone does not give a running or jumping person away."""
    candidates = []
    for j, a in enumerate(actors):
        if not (isinstance(a, Pedestrian) and a.event is None and a.action is None and a.t0 < t < a.t1 - 1):
            continue
        i = t - a.t0
        here = a.pos[i : i + 1]
        if not well_inside(here, 1.0)[0]:
            continue
        if kind == "fall" and not well_inside(here + 1.9 * a.heading[i], 0.5)[0]:
            continue
        if kind == "run" and abs(a.heading[i][0]) < 0.8:
            continue  # sprinting across the picture, where its image speed is 3-4x a walker's
        if kind == "run" and not in_picture(a.route.at(a.dist[i] + np.arange(0.0, 4.5, 0.5))[0]).all():
            continue  # room to run: 4 m of the route ahead are in the picture
        candidates.append(j)
    if not candidates:
        return None
    j = candidates[int(rng.integers(len(candidates)))]
    return j, actors[j].with_action(_action_for(rng, kind, t))


def _new_walker(
    rng: np.random.Generator, t0: int, route: Route | None = None, bag: int | None = None
) -> Pedestrian:
    return Pedestrian(
        random_look(rng), route or random_route(rng), walking_speed(rng), t0, rng.uniform(0, 2 * np.pi), bag
    )


def _route_through_picture(rng: np.random.Generator, kinds: tuple[str, ...], margin: float) -> Route:
    """A random route with at least 3 m well inside the picture (some diagonal ones only touch a corner)."""
    while True:
        route = random_route(rng, kinds)
        s0, s1 = route.inside(margin)
        if s1 - s0 >= 3.0:
            return route


def _arriving(rng: np.random.Generator, kind: str, t: int, n: int, event: int) -> list[Actor]:
    """Actors for an anomaly that comes into the picture at frame t, or a walker who arrives at a spot
    in the picture at frame t and acts there (a bag left behind; any kind when no walker is at hand).
    The one that is the anomaly gets ``event``."""
    if kind in ("run", "bicycle", "cart"):
        route = _route_through_picture(rng, ("cross", "diag") if kind == "bicycle" else ("cross",), -1.0)
        if kind == "run":
            action = _action_for(rng, "run", 0)
            speed = action.params["speed"]
        else:
            speed = float(rng.uniform(4.5, 6.5) if kind == "bicycle" else rng.uniform(3.0, 4.5))
        t0 = t - int(route.inside(margin=-1.0)[0] / (speed / FPS))  # its feet reach the picture at t
        if kind == "run":
            run = Action("run", t0, action.n, action.params)
            actor: Actor = Pedestrian(
                random_look(rng), route, walking_speed(rng), t0, rng.uniform(0, 2 * np.pi), action=run
            )
        elif kind == "bicycle":
            actor = Cyclist(random_look(rng), route, speed, t0, int(rng.choice([30, 200])))
        else:
            actor = Cart(route, speed, t0, int(rng.integers(150, 230)))
        actor.event = event
        return [actor]
    route = _route_through_picture(rng, ("cross", "lawn", "diag"), 1.0)
    s0, s1 = route.inside(1.0)
    s_at = float(rng.uniform(s0 + 0.2 * (s1 - s0), s1 - 0.2 * (s1 - s0)))
    bag = int(rng.choice([rng.integers(15, 50), rng.integers(190, 240)])) if kind == "left_object" else None
    speed = walking_speed(rng)
    t0 = t - int(round(s_at / (speed / FPS)))
    walker = Pedestrian(random_look(rng), route, speed, t0, rng.uniform(0, 2 * np.pi), bag)
    if kind != "left_object":
        walker = walker.with_action(_action_for(rng, kind, t))
        walker.event = event
        return [walker]
    place = 5
    walker = walker.with_action(Action("place", t - place, place))
    joints, heading = walker.pose(t - 1)
    bag_actor = LeftBag(joints[WRIST_R] * [1, 0, 1], heading, t, n, bag)
    bag_actor.event = event
    return [walker, bag_actor]


def plan_video(rng: np.random.Generator, name: str, n: int, event_kinds: list[str]) -> VideoPlan:
    """Lay out one video frame by frame: walkers arrive to keep the scene at its target crowd, and at
    each planned anomaly time a walker in the picture starts the anomaly (or the anomaly arrives)."""
    target = _occupancy_target(rng, n)
    pending = sorted(zip(_event_starts(rng, n, event_kinds), range(len(event_kinds)), event_kinds))
    events = [{"type": k, "motion_only": k in MOTION_ONLY} for k in event_kinds]
    actors: list[Actor] = []
    occupied = np.zeros(PREROLL + n, dtype=int)

    def occupy(a: Actor, sign: int) -> None:
        # count people while they are in the picture: someone who stops there to jump counts like a
        # walker, not like a walker plus the time the walker would have spent off screen
        if isinstance(a, LeftBag):
            return
        frames = np.arange(a.t0, a.t1)[in_picture(a.pos)] + PREROLL
        frames = frames[(frames >= 0) & (frames < len(occupied))]
        occupied[frames] += sign

    for t in range(-PREROLL, n):
        while pending and pending[0][0] <= t:
            start, e, kind = pending[0]
            converted = _convert_walker(rng, kind, t, actors) if kind in ANOMALOUS_ACTIONS else None
            if converted is None and kind in ANOMALOUS_ACTIONS and t - start < 20 and t < n - 12:
                break  # wait for a walker to come into the middle of the picture (not past the end)
            pending.pop(0)
            if converted is not None:
                j, actor = converted
                occupy(actors[j], -1)
                actor.event = e
                actors[j] = actor
                occupy(actor, 1)
            else:
                for actor in _arriving(rng, kind, t, n, e):
                    actors.append(actor)
                    occupy(actor, 1)
        if occupied[t + PREROLL] < target[t + PREROLL] and rng.random() < 0.3:
            bag = int(rng.integers(20, 220)) if rng.random() < 0.2 else None
            walker = _new_walker(rng, t, bag=bag)
            # a walker takes a while to reach the picture: compare with the crowd when it gets there,
            # or everyone who starts out meanwhile arrives at once
            shown = np.arange(walker.t0, walker.t1)[in_picture(walker.pos)] + PREROLL
            shown = shown[shown < len(occupied)]
            if len(shown) and occupied[shown[0]] < target[shown[0]]:
                actors.append(walker)
                occupy(walker, 1)
    gain = (
        float(rng.uniform(0.85, 1.1)),
        float(rng.uniform(0.02, 0.05)),
        float(rng.uniform(400, 800)),
        float(rng.uniform(0, 2 * np.pi)),
    )
    return VideoPlan(name, n, actors, events, gain, float(rng.uniform(0.8, 1.6)))


def render_video(plan: VideoPlan, cam: Camera, background: np.ndarray, structures: list[Structure], rng):
    """Yield (frame uint8 HxW, mask uint8 HxW, ids of the events visible in it) for every frame.

    People are painted far to near over the background, with any structure that stands in front of
    them pasted back over them; sun shadows are collected in a layer and darken only what no person
    covers, so they fall on the ground (and on whoever stands behind)."""
    h, w = background.shape
    shadow, cover = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    base, amp, period, phase = plan.gain
    for t in range(plan.n_frames):
        shown = sorted((a for a in plan.actors if a.alive(t) and a.near(t)), key=lambda a: -a.depth(t))
        img = background.copy()
        shadow[:] = 0
        cover[:] = 0
        mask = np.zeros((h, w), np.uint8)
        visible: set[int] = set()
        front = sorted((s for s in structures if shown and s.z < shown[0].depth(t)), key=lambda s: -s.z)
        for a in shown:
            while front and front[0].z > a.depth(t):
                _paste(img, cover, front.pop(0))
            event_mask = np.zeros((h, w), np.uint8) if a.in_event(t) else None
            a.draw(t, Painter(cam, img, cover, shadow, event_mask), event_mask is not None)
            if event_mask is not None and event_mask.any():
                visible.add(a.event)
                np.maximum(mask, event_mask, out=mask)
        for s in front:
            _paste(img, cover, s)
        soft = cv2.GaussianBlur(shadow, (0, 0), 0.6).astype(np.float32) * (SHADOW_DARKNESS / 255)
        lit = 1 - soft * (1 - cover.astype(np.float32) / 255)
        gain = np.float32(base * (1 + amp * np.sin(2 * np.pi * t / period + phase)))
        noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(plan.noise)
        frame = np.clip(np.rint(img * (lit * gain) + noise), 0, 255).astype(np.uint8)
        yield frame, mask, visible


def _image_speeds(actor: Actor, cam: Camera, frames) -> list[float]:
    """Image speed (pixels per frame) of an actor's ground point at the given frames, where it is in view."""
    pos = getattr(actor, "pos", None)
    if pos is None or pos.ndim != 2:
        return []
    idx = np.array([t - actor.t0 for t in frames if actor.t0 < t < actor.t1], dtype=int)
    if len(idx) == 0:
        return []
    ground = np.stack([pos[:, 0], np.zeros(len(pos)), pos[:, 1]], 1)
    x, y = cam.project(ground)
    inside = (x[idx] >= 0) & (x[idx] < cam.width) & (y[idx] >= 0) & (y[idx] < cam.height)
    step = np.hypot(x[idx] - x[idx - 1], y[idx] - y[idx - 1])
    return step[inside].tolist()


def _paste(img: np.ndarray, cover: np.ndarray, s: Structure) -> None:
    """Put a structure back in front of what was painted behind it (it is not in anyone's shadow)."""
    sl = (slice(s.y0, s.y0 + s.pixels.shape[0]), slice(s.x0, s.x0 + s.pixels.shape[1]))
    img[sl][s.alpha] = s.pixels[s.alpha]
    cover[sl][s.alpha] = 255


# ---------------------------------------------------------------- the dataset


def _event_schedule(rng: np.random.Generator, size: Size) -> list[list[str]]:
    """Anomaly kinds per test video: every kind at least once (twice in large sets), the remaining slots
    running or jumping, so that motion-only anomalies make up most of the anomalous frames."""
    slots = size.test_videos * size.events_per_video
    reps = max(1, slots // (2 * len(EVENT_TYPES)))
    kinds = list(EVENT_TYPES) * reps
    kinds += ["run", "jump"] * ((slots - len(kinds)) // 2 + 1)
    kinds = kinds[:slots]
    order = rng.permutation(len(kinds))
    per_video = [[kinds[j] for j in order[v :: size.test_videos]] for v in range(size.test_videos)]
    # a bag left behind stays to the end of its video, so it is that video's last event
    for kinds_v in per_video:
        kinds_v.sort(key=lambda k: k == "left_object")
    return per_video


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise StvadError("cannot encode frame as PNG", path)
    try:
        path.write_bytes(buf.tobytes())
    except OSError as e:
        raise StvadError(f"cannot write ({e.strerror or e})", path) from e


def _save_mat(path: Path, intervals: list[np.ndarray]) -> None:
    """Write ``gt`` like FFP's ped2.mat; the header's creation date is fixed so the bytes are reproducible."""
    gt = np.empty((1, len(intervals)), dtype=object)
    for i, iv in enumerate(intervals):
        gt[0, i] = iv
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"gt": gt}, format="5", oned_as="column")
    data = bytearray(buf.getvalue())
    header = f"MATLAB 5.0 MAT-file, written by {GENERATOR} (frame intervals, 1-based, inclusive)"
    data[:116] = header.encode("ascii").ljust(116, b" ")
    with atomic_open(path, "wb") as f:
        f.write(bytes(data))


def labels_to_intervals(labels: np.ndarray) -> np.ndarray:
    """Per-frame 0/1 labels -> (2, K) 1-based inclusive [start; end] columns, as in FFP's .mat files."""
    d = np.diff(np.concatenate([[0], labels.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1) + 1, np.flatnonzero(d == -1)
    return np.stack([starts, ends]).astype(np.uint16)


def _prepare_out(out: Path) -> Path:
    """A fresh temporary folder beside ``out``; refuses to replace a folder that is not a synthetic set."""
    if out.exists():
        if not out.is_dir():
            raise StvadError("exists and is not a folder", out)
        if any(out.iterdir()) and not _is_synth(out):
            raise StvadError("folder is not empty and is not an stvad synthetic set; choose another", out)
    tmp = out.parent / f".{out.name}.synth-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise StvadError(f"cannot create folder ({e.strerror or e})", tmp) from e
    return tmp


def _is_synth(folder: Path) -> bool:
    return synth_meta(folder) is not None


@dataclass
class PlannedVideo:
    split: str  # "train" | "test"
    plan: VideoPlan
    rng: np.random.Generator  # continues from planning into rendering (sensor noise)


@dataclass
class PlannedSet:
    """Everything about a synthetic set before a pixel is drawn: the scene and every video's plan."""

    size: Size
    cam: Camera
    background: np.ndarray
    structures: list[Structure]
    videos: list[PlannedVideo]

    def render(self, video: PlannedVideo):
        return render_video(video.plan, self.cam, self.background, self.structures, video.rng)


def plan_dataset(seed: int, size: str = "default") -> PlannedSet:
    """Plan the set: one random stream for the scene, one for the anomaly schedule, one per video."""
    spec = SIZES[size]
    seeds = np.random.SeedSequence(seed).spawn(2 + spec.train_videos + spec.test_videos)
    rngs = [np.random.Generator(np.random.PCG64(s)) for s in seeds]
    cam = Camera(spec.height, spec.width)
    background, structures = build_background(cam, rngs[0])
    schedule = _event_schedule(rngs[1], spec)
    jobs = [("train", v, spec.train_frames, []) for v in range(spec.train_videos)]
    jobs += [("test", v, spec.test_frames, schedule[v]) for v in range(spec.test_videos)]
    videos = [
        PlannedVideo(split, plan_video(rng, f"{v + 1:02d}", n, kinds), rng)
        for (split, v, n, kinds), rng in zip(jobs, rngs[2:])
    ]
    return PlannedSet(spec, cam, background, structures, videos)


def _generate_into(root: Path, seed: int, size_name: str, progress: bool) -> dict:
    planned = plan_dataset(seed, size_name)
    size, cam = planned.size, planned.cam
    total = size.train_videos * size.train_frames + size.test_videos * size.test_frames
    bar = _progress(total) if progress else None

    videos: dict[str, list[dict]] = {"train": [], "test": []}
    events_out: list[dict] = []
    intervals: list[np.ndarray] = []
    for video in planned.videos:
        split, plan = video.split, video.plan
        name, n = plan.name, plan.n_frames
        folder = root / ("training" if split == "train" else "testing")
        frames_dir = folder / "frames" / name
        frames_dir.mkdir(parents=True)
        masks_dir = folder / "masks" / name
        if split == "test":
            masks_dir.mkdir(parents=True)
        labels = np.zeros(n, dtype=np.uint8)
        seen: dict[int, list[int]] = {}
        digits = max(3, len(str(n - 1)))
        for t, (frame, mask, visible) in enumerate(planned.render(video)):
            _write_png(frames_dir / f"{t:0{digits}d}.png", frame)
            if split == "test":
                _write_png(masks_dir / f"{t:0{digits}d}.png", mask)
                labels[t] = mask.any()
                for e in visible:
                    seen.setdefault(e, []).append(t)
            if bar is not None:
                bar.update(1)
        walkers = [a for a in plan.actors if a.event is None and isinstance(a, Pedestrian)]
        steps = [v for a in walkers for v in _image_speeds(a, cam, range(n))]
        videos[split].append(
            {
                "name": name,
                "frames": n,
                "anomalous_frames": int(labels.sum()),
                "walker_speed_px": round(float(np.median(steps)), 3) if steps else None,
            }
        )
        if split == "test":
            intervals.append(labels_to_intervals(labels))
            for e, ev in enumerate(plan.events):
                frames = seen.get(e, [])
                steps = [v for a in plan.actors if a.event == e for v in _image_speeds(a, cam, frames)]
                events_out.append(
                    {
                        "video": name,
                        "type": ev["type"],
                        "start": frames[0] if frames else None,
                        "end": frames[-1] if frames else None,
                        "frames": len(frames),
                        "motion_only": ev["motion_only"],
                        "speed_px": round(float(np.median(steps)), 3) if steps else 0.0,
                    }
                )
    if bar is not None:
        bar.close()
    _save_mat(root / "synth.mat", intervals)
    return {
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "size": size_name,
        "height": size.height,
        "width": size.width,
        "fps": FPS,
        "frame_index_base": 0,
        "train": videos["train"],
        "test": videos["test"],
        "events": events_out,
    }


def generate(
    out: str | os.PathLike,
    seed: int = 0,
    size: str = "default",
    progress: bool = False,
) -> Path:
    """Write the synthetic benchmark to ``out`` (FFP layout, see the module docstring); returns its root.

    A previous synthetic set in ``out`` is replaced only once the new one is complete."""
    if size not in SIZES:
        raise StvadError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if seed < 0:
        raise StvadError(f"seed must be a non-negative integer, got {seed}")
    out = Path(out)
    tmp = _prepare_out(out)
    try:
        meta = _generate_into(tmp, seed, size, progress)
        atomic_write_json(tmp / "events.json", meta)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="synth")
