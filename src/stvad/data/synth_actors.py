"""What moves in the synthetic scene: people on routes, a cyclist, a motor cart, a bag left behind.

Each actor knows its ground position for every frame of its life (precomputed at construction) and
draws itself for frame t through a :class:`~stvad.data.synth_scene.Painter`; while it is an anomaly it
also draws into the mask. A pedestrian's life is one walk along a route at constant speed, optionally
with one action on the way: running from some frame on, or stopping to jump, fall, toss an object or
put a bag down (and then walking on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stvad.data.synth_scene import (
    HALF_VIEW,
    PATH_B,
    RUN,
    WALK,
    Z_NEAR,
    Look,
    Painter,
    body_pose,
    box_corners,
    cyclist_pose,
    draw_body,
    fall_rotate,
    to_world,
)

FPS = 10.0
GRAVITY = 9.81
WRIST_R = 16  # index of the right wrist in synth_scene.JOINTS


class Route:
    """A walking route: a polyline on the ground (metres), walked at constant speed."""

    def __init__(self, points: np.ndarray):
        self.points = np.asarray(points, dtype=np.float64)
        seg = np.diff(self.points, axis=0)
        self.seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self.cum = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.dirs = seg / self.seg_len[:, None]

    @property
    def length(self) -> float:
        return float(self.cum[-1])

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (N, 2) and unit headings (N, 2) at distances s along the route."""
        s = np.clip(np.asarray(s, dtype=np.float64), 0, self.length)
        i = np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, len(self.seg_len) - 1)
        pos = self.points[i] + (s - self.cum[i])[:, None] * self.dirs[i]
        return pos, self.dirs[i]

    def inside(self, margin: float = 0.8) -> tuple[float, float]:
        """The stretch [s0, s1] of the route where the feet are inside the picture by ``margin`` metres."""
        s = np.arange(0, self.length, 0.1)
        ok = well_inside(self.at(s)[0], margin)
        if not ok.any():
            return self.length / 2, self.length / 2
        return float(s[ok].min()), float(s[ok].max())


def in_picture(pos: np.ndarray) -> np.ndarray:
    """Whether ground points (N, 2) are in the picture (up to the building at the back)."""
    return (np.abs(pos[:, 0]) < HALF_VIEW * pos[:, 1]) & (pos[:, 1] > Z_NEAR + 0.5) & (pos[:, 1] < 24.0)


def well_inside(pos: np.ndarray, margin: float = 0.8) -> np.ndarray:
    """Whether ground points (N, 2) are inside the picture with room to spare: depths 7.5..15 m keep a
    whole person (or a fallen one) in the frame, at least ~14 pixels tall at 64x64."""
    return (
        (np.abs(pos[:, 0]) < HALF_VIEW * pos[:, 1] - margin) & (pos[:, 1] > Z_NEAR + 1.5) & (pos[:, 1] < 15.0)
    )


def _edge_x(z: float) -> float:
    """Just outside the picture's side edge at depth z."""
    return HALF_VIEW * z + 1.3


def random_route(rng: np.random.Generator, kinds: tuple[str, ...] = ("cross", "lawn", "diag")) -> Route:
    """A route people take through the scene: across the plaza, up the lawn path, or diagonally."""
    weights = np.array([{"cross": 0.55, "lawn": 0.2, "diag": 0.25}[k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    if kind == "cross":
        z1, z2 = rng.uniform(7.5, 13.0, 2)
        pts = np.array([[-_edge_x(z1), z1], [_edge_x(z2), z2]])
    elif kind == "lawn":
        start = [rng.uniform(-1.5, 1.5), 3.0]  # below the picture: even the head is out of view
        pts = np.array(
            [start, PATH_B[0] + rng.uniform(-0.3, 0.3, 2), *(PATH_B[1:] + rng.uniform(-0.3, 0.3, 2))]
        )
    else:
        z = rng.uniform(9.5, 14.0)
        side = rng.choice([-1.0, 1.0])
        pts = np.array([[rng.uniform(-1.5, 1.5), 3.0], [side * _edge_x(z), z]])
    if rng.random() < 0.5:
        pts = pts[::-1]
    return Route(pts)


def random_look(rng: np.random.Generator) -> Look:
    return Look(
        height=float(np.clip(rng.normal(1.74, 0.08), 1.55, 1.95)),
        build=float(rng.uniform(0.9, 1.15)),
        shirt=int(rng.integers(25, 236)),
        pants=int(rng.integers(20, 171)),
        skin=int(rng.integers(90, 201)),
        hair=int(rng.integers(20, 121)),
        shoes=int(rng.integers(20, 81)),
    )


def walking_speed(rng: np.random.Generator) -> float:
    """Normal walking speeds, m/s."""
    return float(np.clip(rng.normal(1.3, 0.12), 1.05, 1.6))


@dataclass(frozen=True)
class Action:
    """Something a pedestrian does from frame ``start`` for ``n`` frames: run (to the end of the route),
    jump, fall, throw (toss an object and catch it) or place (put the carried bag down)."""

    kind: str
    start: int
    n: int
    params: dict = field(default_factory=dict)


ANOMALOUS_ACTIONS = ("run", "jump", "fall", "throw")


class Actor:
    """Something that moves through a video: it draws itself, and into the mask while it is the anomaly."""

    t0: int
    t1: int  # exclusive
    event: int | None = None  # index into the video's events while it is anomalous

    def alive(self, t: int) -> bool:
        return self.t0 <= t < self.t1

    def near(self, t: int) -> bool:
        """Whether any of it (or its shadow) can be in the picture at frame t."""
        return True

    def depth(self, t: int) -> float:
        raise NotImplementedError

    def in_event(self, t: int) -> bool:
        return self.event is not None

    def draw(self, t: int, painter: Painter, to_mask: bool) -> None:
        raise NotImplementedError


class Moving(Actor):
    """An actor on a route at constant speed from frame t0, entirely precomputed."""

    def __init__(self, route: Route, speed: float, t0: int):
        self.route, self.speed, self.t0 = route, speed, t0
        n = int(np.ceil(route.length / (speed / FPS)))
        self.t1 = t0 + n
        self.dist = np.arange(n) * speed / FPS
        self.pos, self.heading = route.at(self.dist)

    def depth(self, t: int) -> float:
        return float(self.pos[t - self.t0, 1])

    def near(self, t: int) -> bool:
        return bool(_near_picture(self.pos[t - self.t0]))


def _near_picture(pos: np.ndarray) -> np.ndarray:
    """Ground points close enough to the picture for a person standing there (or a shadow) to show."""
    return (np.abs(pos[..., 0]) < HALF_VIEW * pos[..., 1] + 3.0) & (pos[..., 1] > 2.0) & (pos[..., 1] < 27.0)


class Pedestrian(Actor):
    """A person walking a route at constant speed, with at most one :class:`Action` on the way."""

    def __init__(
        self,
        look: Look,
        route: Route,
        speed: float,
        t0: int,
        phase0: float,
        bag: int | None = None,
        action: Action | None = None,
    ):
        self.look, self.route, self.speed, self.t0 = look, route, speed, t0
        self.phase0, self.bag, self.action = phase0, bag, action
        walk_cycle = 0.82 * look.height * np.sqrt(speed / 1.3)  # faster walkers take longer strides
        run_cycle = 1.6 * look.height
        s, phase, t = [0.0], [phase0], t0
        self.mode: list[tuple[str, int]] = []  # (what the person does, frames since it began)
        while s[-1] < route.length:
            a = action
            if a is not None and a.start <= t < a.start + a.n:
                kind, k = a.kind, t - a.start
            else:
                kind, k = "walk", 0
            self.mode.append((kind, k))
            if kind == "walk":
                step, cycle = speed / FPS, walk_cycle
            elif kind == "run":
                step, cycle = a.params["speed"] / FPS, run_cycle
            else:
                step, cycle = 0.0, 1.0
            s.append(s[-1] + step)
            phase.append(phase[-1] + 2 * np.pi * step / cycle)
            t += 1
        self.t1 = t
        self.dist = np.array(s[:-1])
        self.pos, self.heading = route.at(self.dist)
        self.phase = np.array(phase[:-1])

    def with_action(self, action: Action) -> Pedestrian:
        """The same person, identical up to ``action.start``, who then does ``action``."""
        return Pedestrian(self.look, self.route, self.speed, self.t0, self.phase0, self.bag, action)

    def depth(self, t: int) -> float:
        return float(self.pos[t - self.t0, 1])

    def near(self, t: int) -> bool:
        return bool(_near_picture(self.pos[t - self.t0]))

    def in_event(self, t: int) -> bool:
        return self.event is not None and self.mode[t - self.t0][0] in ANOMALOUS_ACTIONS

    def pose(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """World joints and heading at frame t."""
        i = t - self.t0
        h = self.look.height
        kind, k = self.mode[i]
        if kind in ("walk", "run"):
            p = body_pose(h, self.phase[i], RUN if kind == "run" else WALK)
        elif kind == "jump":
            period = self.action.params["period"]
            w = (k % period) / period
            crouch = max(0.0, 1.0 - 5.0 * min(w, 1.0 - w))  # knees bend at take-off and landing
            p = body_pose(h, 0.0, WALK, stride=0.0, crouch=0.45 * crouch)
            p[:, 2] += 4 * self.action.params["height"] * w * (1 - w)
        elif kind == "fall":
            down, up = 4, 8
            if k < down:
                angle = (np.pi / 2) * ((k + 1) / down) ** 2
            elif k >= self.action.n - up:
                angle = (np.pi / 2) * (self.action.n - k - 1) / up
            else:
                angle = np.pi / 2
            p = fall_rotate(body_pose(h, self.phase[i], WALK, stride=0.3), angle, h)
        elif kind == "throw":
            p = body_pose(h, 0.0, WALK, stride=0.0, arm_raise=_throw_arm(self.action, k))
        else:  # place
            p = body_pose(h, 0.0, WALK, stride=0.0)
        return to_world(p, self.pos[i], self.heading[i]), self.heading[i]

    def draw(self, t: int, painter: Painter, to_mask: bool) -> None:
        joints, heading = self.pose(t)
        draw_body(painter, joints, heading, self.look, to_mask)
        kind, k = self.mode[t - self.t0]
        wrist = joints[WRIST_R]
        if self.bag is not None:
            if kind == "place":  # lowered to the ground over the action
                draw_bag(
                    painter, wrist, heading, self.bag, (wrist[1] - 0.4) * (1 - (k + 1) / self.action.n), False
                )
            elif not (self.action is not None and self.action.kind == "place" and t >= self.action.start):
                draw_bag(painter, wrist, heading, self.bag, wrist[1] - 0.4, False)
        if kind == "throw":
            r = self.action.params["radius"]
            centre = wrist + np.array([0.0, r + _throw_object_height(self.action, k), 0.0])
            painter.spheres(centre[None], np.array([r]), [self.action.params["shade"]], to_mask)


BAG_SIZE = (0.55, 0.25, 0.4)  # length, width, height (m): a holdall, visible at 64x64


def draw_bag(
    painter: Painter, at: np.ndarray, heading: np.ndarray, shade: int, base: float, to_mask: bool
) -> None:
    corners = box_corners((at[0], at[2]), heading, *BAG_SIZE, base=max(base, 0.0))
    painter.box(
        corners, np.array([0, shade + 15, shade, shade, shade - 10, shade - 10]).clip(0, 255), to_mask
    )


def _throw_arm(act: Action, k: int) -> float:
    """How far the throwing arm is raised: up during the tosses, ramping at the start and end."""
    return float(np.clip(min(k + 1, act.n - k) / 3.0, 0.0, 1.0))


THROW_WIND, THROW_HOLD = 3, 2


def throw_frames(flight: int, tosses: int) -> int:
    return THROW_WIND + tosses * (flight + THROW_HOLD) + 1


def _throw_object_height(act: Action, k: int) -> float:
    """Height of the tossed object above the hand: ballistic flights separated by short holds."""
    flight = act.params["flight"]
    j = k - THROW_WIND
    if j < 0:
        return 0.0
    j %= flight + THROW_HOLD
    if j >= flight:
        return 0.0
    tau, total = j / FPS, flight / FPS
    v0 = GRAVITY * total / 2  # up and back into the hand after ``flight`` frames
    return float(max(v0 * tau - GRAVITY * tau**2 / 2, 0.0))


class Cyclist(Moving):
    def __init__(self, look: Look, route: Route, speed: float, t0: int, shade: int):
        super().__init__(route, speed, t0)
        self.look, self.shade = look, shade
        self.crank = 2 * np.pi * self.dist / 4.5  # metres per pedal turn

    def draw(self, t: int, painter: Painter, to_mask: bool) -> None:
        i = t - self.t0
        pos, heading = self.pos[i], self.heading[i]
        ang = np.linspace(0, 2 * np.pi, 14, endpoint=False)
        r = 0.34
        rims = [
            to_world(
                np.stack([hub + r * np.cos(ang), np.zeros_like(ang), r + r * np.sin(ang)], 1), pos, heading
            )
            for hub in (-0.52, 0.52)
        ]
        painter.rings(np.stack(rims), 0.035, self.shade, to_mask)
        # rear hub, crank, saddle, head tube, front hub, handlebar
        frame = np.array(
            [[-0.52, 0, 0.34], [0.05, 0, 0.32], [-0.25, 0, 0.9], [0.42, 0, 0.85], [0.52, 0, 0.34]]
        )
        fw = to_world(frame, pos, heading)
        a, b = fw[[0, 1, 2, 1, 3, 2]], fw[[1, 2, 0, 3, 4, 3]]
        painter.capsules(a, b, np.full(len(a), 0.03), [self.shade] * len(a), to_mask)
        rider = to_world(cyclist_pose(self.look.height, self.crank[i]), pos, heading)
        draw_body(painter, rider, heading, self.look, to_mask)


class Cart(Moving):
    """A small motor cart: a box body with a cab, on dark wheels."""

    def __init__(self, route: Route, speed: float, t0: int, shade: int):
        super().__init__(route, speed, t0)
        self.shade = shade

    def draw(self, t: int, painter: Painter, to_mask: bool) -> None:
        i = t - self.t0
        pos, heading = self.pos[i], self.heading[i]
        wheels = to_world(
            np.array([[x, y, 0.27] for x in (-0.65, 0.65) for y in (-0.58, 0.58)]), pos, heading
        )
        painter.spheres(wheels, np.full(4, 0.27), [30] * 4, to_mask)
        s = self.shade
        body = box_corners(pos, heading, 2.0, 1.15, 0.75, base=0.3)
        painter.box(body, np.array([0, s, s - 25, s - 25, s - 40, s - 40]).clip(0, 255), to_mask)
        cab = box_corners(pos + 0.35 * heading, heading, 1.0, 1.1, 0.8, base=1.05)
        painter.box(cab, np.array([0, s + 10, s - 60, s - 60, s - 70, s - 70]).clip(0, 255), to_mask)


class LeftBag(Actor):
    """A bag standing where its owner put it down, to the end of the video."""

    def __init__(self, at: np.ndarray, heading: np.ndarray, t0: int, t1: int, shade: int):
        self.at, self.heading, self.t0, self.t1, self.shade = at, heading, t0, t1, shade

    def depth(self, t: int) -> float:
        return float(self.at[2])

    def draw(self, t: int, painter: Painter, to_mask: bool) -> None:
        draw_bag(painter, self.at, self.heading, self.shade, 0.0, to_mask)
