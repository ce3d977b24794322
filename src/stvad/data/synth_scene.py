"""Geometry and drawing for the synthetic scene: camera, static background, articulated bodies, props.

World coordinates are metres: X to the right, Y up, Z away from the camera along the ground. The camera
looks at a ground plane with its principal point shifted up (a tilt-shift view), so verticals stay
vertical and a person's image height is proportional to the distance of their feet from the horizon row.
Everything that moves is described as world-space primitives (capsules, spheres, boxes, rings) which the
:class:`Painter` projects into the frame, onto the ground as a sun shadow, and into the anomaly mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel motion stays smooth instead of snapping to pixels
_ONE = 1 << SHIFT
SUN = np.array([0.45, -0.3])  # ground shadow offset per metre of height (X, Z): shadows fall right, toward us
SHADOW_DARKNESS = 0.38


# The view: the picture is 2 * HALF_VIEW metres wide per metre of depth, and its rows see the ground from
# Z_NEAR (bottom) to Z_FAR (top; the far ground is hidden behind a building). Close enough that a walker
# on the plaza is 12-30 pixels tall at 64x64, and the camera high enough (about 4.5 m) that a whole
# person stays in the picture out to ~22 m.
HALF_VIEW = 0.32
Z_NEAR, Z_FAR = 6.0, 40.0


@dataclass(frozen=True)
class Camera:
    """Pinhole camera over a ground plane; rows 0..H-1 see ground depths z_far..z_near."""

    height: int
    width: int
    z_near: float = Z_NEAR
    z_far: float = Z_FAR
    half_view: float = HALF_VIEW

    @property
    def f(self) -> float:
        return self.width / (2 * self.half_view)

    @property
    def cam_y(self) -> float:
        """Camera height above the ground, chosen so the bottom and top rows see z_near and z_far."""
        return self.height / (self.f * (1 / self.z_near - 1 / self.z_far))

    @property
    def y_horizon(self) -> float:
        return -self.f * self.cam_y / self.z_far

    def project(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> image x, y (pixel centres at integer coordinates)."""
        z = np.maximum(p[..., 2], 0.5)
        x = self.width / 2 - 0.5 + self.f * p[..., 0] / z
        y = self.y_horizon - 0.5 + self.f * (self.cam_y - p[..., 1]) / z
        return x, y

    def px_per_m(self, z: np.ndarray | float) -> np.ndarray | float:
        return self.f / np.maximum(z, 0.5)

    def ground_homography(self, x0: float, z0: float, res: float) -> np.ndarray:
        """Homography from ground texture pixels (u, v) = ((X - x0) / res, (Z - z0) / res) to the image."""
        f, cx, yh = self.f, self.width / 2 - 0.5, self.y_horizon - 0.5
        to_img = np.array([[f, cx, 0.0], [0.0, yh, f * self.cam_y], [0.0, 1.0, 0.0]])
        tex_to_world = np.array([[res, 0.0, x0], [0.0, res, z0], [0.0, 0.0, 1.0]])
        return to_img @ tex_to_world


def _shadow_points(p: np.ndarray) -> np.ndarray:
    """Project world points along the sun direction onto the ground (Y = 0)."""
    q = p.copy()
    q[..., 0] += p[..., 1] * SUN[0]
    q[..., 2] += p[..., 1] * SUN[1]
    q[..., 1] = 0.0
    return q


_CAPSULE = np.array(
    [[0, 1], [-0.7, 0.7], [-1, 0], [-0.7, -0.7], [0, -1], [0, -1], [0.7, -0.7], [1, 0], [0.7, 0.7], [0, 1]]
)
_CIRCLE = np.stack(
    [
        np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
        np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
    ],
    1,
)
# faces as corner indices, in the order bottom, top, -width, +width, -length, +length
_BOX_FACES = np.array([[0, 2, 6, 4], [1, 3, 7, 5], [0, 1, 5, 4], [2, 3, 7, 6], [0, 1, 3, 2], [4, 5, 7, 6]])


_END2 = np.array([0.0] * 5 + [1.0] * 5)  # which end each _CAPSULE point is drawn around


def _capsule_polys(p1: np.ndarray, p2: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Image-space capsules (end points (S, 2), radii (S,) in pixels) -> (S, 10, 2) convex polygons."""
    d = p2 - p1
    n = np.hypot(d[:, 0], d[:, 1])[:, None]
    d = np.where(n > 1e-6, d / np.maximum(n, 1e-6), [0.0, 1.0])
    normal = np.stack([-d[:, 1], d[:, 0]], 1)
    centre = p1[:, None] + _END2[None, :, None] * (p2 - p1)[:, None]
    # _CAPSULE rows are (along, across) in units of the radius
    offset = _CAPSULE[None, :, :1] * d[:, None] + _CAPSULE[None, :, 1:] * normal[:, None]
    return centre + r[:, None, None] * offset


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _ONE).astype(np.int32)


class Painter:
    """Draws world-space primitives into a frame and, when given, its other layers: ``cover`` (where
    something was drawn, so shadows do not fall on it), ``shadow`` (sun shadows on the ground) and
    ``mask`` (the anomaly mask)."""

    def __init__(
        self,
        cam: Camera,
        img: np.ndarray,
        cover: np.ndarray | None = None,
        shadow: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ):
        self.cam, self.img, self.cover, self.shadow, self.mask = cam, img, cover, shadow, mask

    def _fill(self, polys: np.ndarray, shades, to_mask: bool, shadow_polys: np.ndarray) -> None:
        fixed = _fixed(polys)
        for poly, shade in zip(fixed, shades):
            cv2.fillConvexPoly(self.img, poly, int(shade), cv2.LINE_AA, SHIFT)
        for layer, on in ((self.cover, True), (self.mask, to_mask)):
            if on and layer is not None:
                for poly in fixed:
                    cv2.fillConvexPoly(
                        layer, poly, 255, cv2.LINE_AA if layer is self.cover else cv2.LINE_8, SHIFT
                    )
        if self.shadow is not None:
            for poly in _fixed(shadow_polys):
                cv2.fillConvexPoly(self.shadow, poly, 255, cv2.LINE_AA, SHIFT)

    def capsules(self, p1: np.ndarray, p2: np.ndarray, radius: np.ndarray, shades, to_mask: bool) -> None:
        """Capsules between world points p1, p2 (S, 3) with world radii (S,), drawn in the given order."""
        k = len(p1)
        pts = np.concatenate([p1, p2, _shadow_points(p1), _shadow_points(p2)])
        x, y = self.cam.project(pts)
        xy = np.stack([x, y], 1)
        scale = self.cam.px_per_m((pts[:k, 2] + pts[k : 2 * k, 2]) / 2)
        # a shadow on the ground is foreshortened like the ground itself
        shadow_scale = self.cam.px_per_m((pts[2 * k : 3 * k, 2] + pts[3 * k :, 2]) / 2)
        radius = np.asarray(radius, dtype=np.float64)
        self._fill(
            _capsule_polys(xy[:k], xy[k : 2 * k], radius * scale),
            shades,
            to_mask,
            _capsule_polys(xy[2 * k : 3 * k], xy[3 * k :], radius * shadow_scale),
        )

    def spheres(self, centres: np.ndarray, radius: np.ndarray, shades, to_mask: bool) -> None:
        x, y = self.cam.project(np.concatenate([centres, _shadow_points(centres)]))
        k = len(centres)
        r = (np.asarray(radius) * self.cam.px_per_m(centres[:, 2]))[:, None, None]
        polys = np.stack([x[:k], y[:k]], 1)[:, None] + r * _CIRCLE
        # the shadow of a ball on the ground: an ellipse squashed by the ground's foreshortening
        spolys = np.stack([x[k:], y[k:]], 1)[:, None] + 0.9 * r * _CIRCLE * [1.0, 0.6]
        self._fill(polys, shades, to_mask, spolys)

    def box(self, corners: np.ndarray, shades: np.ndarray, to_mask: bool) -> None:
        """A box from its 8 world corners (index bits: 1 = +height, 2 = +width, 4 = +length); faces
        facing the camera are filled with ``shades[face]`` (bottom, top, -w, +w, -l, +l)."""
        box_faces(self.img, self.cam, corners, shades)
        x, y = self.cam.project(np.concatenate([corners, _shadow_points(corners)]))
        xy = _fixed(np.stack([x, y], -1))
        hull = cv2.convexHull(xy[:8].reshape(-1, 1, 2))
        if self.cover is not None:
            cv2.fillConvexPoly(self.cover, hull, 255, cv2.LINE_AA, SHIFT)
        if to_mask and self.mask is not None:
            cv2.fillConvexPoly(self.mask, hull, 255, cv2.LINE_8, SHIFT)
        if self.shadow is not None:
            cv2.fillConvexPoly(self.shadow, cv2.convexHull(xy[8:].reshape(-1, 1, 2)), 255, cv2.LINE_AA, SHIFT)

    def rings(self, pts: np.ndarray, radius: float, shade: int, to_mask: bool) -> None:
        """Closed tubes through world points (R, N, 3), e.g. wheels seen at an angle."""
        p1 = pts.reshape(-1, 3)
        p2 = np.roll(pts, -1, axis=1).reshape(-1, 3)
        self.capsules(p1, p2, np.full(len(p1), radius), [shade] * len(p1), to_mask)


def box_faces(img: np.ndarray, cam: Camera, corners: np.ndarray, shades: np.ndarray) -> None:
    """Fill the camera-facing faces of a box; visible faces of a convex box never overlap."""
    x, y = cam.project(corners)
    eye = np.array([0.0, cam.cam_y, 0.0])
    centre = corners.mean(0)
    for face, shade in zip(_BOX_FACES, shades):
        fc = corners[face].mean(0)
        if np.dot(fc - centre, eye - fc) <= 0:
            continue
        poly = _fixed(np.stack([x[face], y[face]], -1))
        cv2.fillConvexPoly(img, poly, int(shade), cv2.LINE_AA, SHIFT)


def box_corners(
    centre_xz, heading, length: float, width: float, height: float, base: float = 0.0
) -> np.ndarray:
    """8 world corners of a box standing on the ground (bottom at ``base``), long axis along heading."""
    fwd = np.array([heading[0], 0.0, heading[1]])
    lat = np.array([-heading[1], 0.0, heading[0]])
    c = np.array([centre_xz[0], 0.0, centre_xz[1]])
    idx = np.arange(8)
    u = base + height * ((idx >> 0) & 1)
    w = width * (((idx >> 1) & 1) - 0.5)
    ln = length * (((idx >> 2) & 1) - 0.5)
    return c + ln[:, None] * fwd + w[:, None] * lat + u[:, None] * np.array([0.0, 1.0, 0.0])


# ---------------------------------------------------------------- articulated bodies (fractions of height)
THIGH, SHIN, FOOT = 0.245, 0.246, 0.09
UPPER_ARM, FOREARM = 0.186, 0.23
HIP_H, NECK_H, HEAD_R = 0.53, 0.81, 0.068
HIP_HALF, SHOULDER_HALF = 0.05, 0.11

# joint order of a body; (a, l, u) = forward, left, up in metres in the body frame
JOINTS = ["hip", "neck", "head", "hip_l", "knee_l", "ankle_l", "toe_l", "hip_r", "knee_r", "ankle_r",
          "toe_r", "sh_l", "elbow_l", "wrist_l", "sh_r", "elbow_r", "wrist_r"]  # fmt: skip
J = {name: i for i, name in enumerate(JOINTS)}


@dataclass(frozen=True)
class Gait:
    hip_amp: float  # leg swing amplitude (rad)
    knee_base: float
    knee_amp: float
    arm_amp: float
    elbow: float
    lean: float
    bounce: float  # extra vertical lift at mid-stride, fraction of height


WALK = Gait(hip_amp=0.38, knee_base=0.08, knee_amp=0.85, arm_amp=0.35, elbow=0.25, lean=0.03, bounce=0.0)
RUN = Gait(hip_amp=0.62, knee_base=0.35, knee_amp=1.5, arm_amp=0.75, elbow=1.45, lean=0.2, bounce=0.05)


def _leg(hip: np.ndarray, theta, knee, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    knee_p = hip + THIGH * h * np.array([np.sin(theta), 0, -np.cos(theta)])
    ankle = knee_p + SHIN * h * np.array([np.sin(theta - knee), 0, -np.cos(theta - knee)])
    toe = ankle + np.array([FOOT * h, 0, -0.01 * h])
    return knee_p, ankle, toe


def _arm(sh: np.ndarray, alpha, elbow, h: float) -> tuple[np.ndarray, np.ndarray]:
    el = sh + UPPER_ARM * h * np.array([np.sin(alpha), 0, -np.cos(alpha)])
    wr = el + FOREARM * h * np.array([np.sin(alpha + elbow), 0, -np.cos(alpha + elbow)])
    return el, wr


def body_pose(
    h: float,
    phase: float = 0.0,
    gait: Gait = WALK,
    stride: float = 1.0,
    arm_raise: float = 0.0,
    crouch: float = 0.0,
) -> np.ndarray:
    """Joint positions (len(JOINTS), 3) as (forward, left, up) in metres, feet on the ground.

    ``stride`` scales the swing (0 = standing still), ``arm_raise`` lifts the right arm overhead
    (0..1, for throwing), ``crouch`` bends both knees (0..1, before a jump)."""
    p = np.zeros((len(JOINTS), 3))
    hip = np.array([0.0, 0.0, HIP_H * h])
    lean = gait.lean * stride
    for side, ph, lat in (("l", phase + np.pi, HIP_HALF), ("r", phase, -HIP_HALF)):
        theta = gait.hip_amp * stride * np.sin(ph) - 0.5 * crouch
        knee = stride * (gait.knee_base + gait.knee_amp * max(0.0, np.cos(ph)) ** 2) + 1.1 * crouch
        k, a, t = _leg(hip + [0, lat, 0], theta, knee, h)
        p[J["hip_" + side]] = hip + [0, lat, 0]
        p[J["knee_" + side]], p[J["ankle_" + side]], p[J["toe_" + side]] = k, a, t
    torso = NECK_H * h - HIP_H * h
    neck = hip + [torso * np.sin(lean), 0, torso * np.cos(lean)]
    p[J["hip"]], p[J["neck"]] = hip, neck
    p[J["head"]] = neck + [(0.12 * h) * np.sin(lean), 0, 0.12 * h]
    for side, ph, lat in (("l", phase, SHOULDER_HALF), ("r", phase + np.pi, -SHOULDER_HALF)):
        sh = neck + [0, lat, -0.02 * h]
        alpha = -gait.arm_amp * stride * np.sin(ph)
        elbow = gait.elbow * max(stride, 0.3)
        if side == "r" and arm_raise > 0:
            alpha, elbow = (1 - arm_raise) * alpha + arm_raise * np.pi * 0.95, (1 - arm_raise) * elbow
        el, wr = _arm(sh, alpha, elbow, h)
        p[J["sh_" + side]], p[J["elbow_" + side]], p[J["wrist_" + side]] = sh, el, wr
    # stand on the lower foot; running adds a flight phase
    ground = min(p[J["ankle_l"], 2], p[J["ankle_r"], 2]) - 0.035 * h
    p[:, 2] -= ground
    p[:, 2] += gait.bounce * stride * h * abs(np.sin(phase))
    return p


def cyclist_pose(h: float, crank: float) -> np.ndarray:
    """A rider on a bicycle (same joints as a walker): seated, leaning forward, hands on the bars,
    feet on pedals going round the crank."""
    p = np.zeros((len(JOINTS), 3))
    hip = np.array([-0.25, 0.0, 0.95])
    crank_c = np.array([0.05, 0.0, 0.32])
    p[J["hip"]] = hip
    neck = hip + np.array([0.32, 0, 0.45]) * h / 1.75
    p[J["neck"]], p[J["head"]] = neck, neck + np.array([0.08, 0, 0.18]) * h / 1.75
    bars = np.array([0.45, 0.0, 1.0])
    for side, ph, lat in (("l", crank + np.pi, HIP_HALF), ("r", crank, -HIP_HALF)):
        pedal = crank_c + [0.17 * np.cos(ph), lat, 0.17 * np.sin(ph)]
        hp = hip + [0, lat, 0]
        knee = _two_link(hp, pedal, THIGH * h, SHIN * h * 1.05)
        p[J["hip_" + side]], p[J["knee_" + side]], p[J["ankle_" + side]] = hp, knee, pedal
        p[J["toe_" + side]] = pedal + [0.08, 0, 0]
        sh = neck + [0, 1.6 * lat, -0.02]
        hand = bars + [0, 2.5 * lat, 0]
        p[J["sh_" + side]], p[J["wrist_" + side]] = sh, hand
        p[J["elbow_" + side]] = (sh + hand) / 2 + [0, 0, -0.05]
    return p


def _two_link(a: np.ndarray, b: np.ndarray, l1: float, l2: float) -> np.ndarray:
    """Knee position of a two-segment leg from hip a to foot b, bending forward (in the a-u plane)."""
    d = b - a
    dist = min(np.linalg.norm(d), l1 + l2 - 1e-6)
    along = (l1**2 - l2**2 + dist**2) / (2 * dist)
    up = np.sqrt(max(l1**2 - along**2, 0.0))
    unit = d / max(np.linalg.norm(d), 1e-9)
    perp = np.array([-unit[2], 0.0, unit[0]])  # rotate forward-down direction by +90 degrees in (a, u)
    if perp[0] < 0:
        perp = -perp
    return a + along * unit + up * perp


def fall_rotate(p: np.ndarray, angle: float, h: float) -> np.ndarray:
    """Tip a body forward about its feet by ``angle`` (0 upright .. pi/2 lying face down)."""
    q = p.copy()
    c, s = np.cos(angle), np.sin(angle)
    q[:, 0] = p[:, 0] * c + p[:, 2] * s
    q[:, 2] = -p[:, 0] * s + p[:, 2] * c
    q[:, 2] -= min(q[:, 2].min() - 0.04 * h * angle / (np.pi / 2), 0.0)
    return q


def to_world(p: np.ndarray, pos: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Body frame (forward, left, up) -> world (X, Y, Z) at ground position pos = (X, Z)."""
    fx, fz = heading
    out = np.empty_like(p)
    out[:, 0] = pos[0] + p[:, 0] * fx - p[:, 1] * fz
    out[:, 2] = pos[1] + p[:, 0] * fz + p[:, 1] * fx
    out[:, 1] = p[:, 2]
    return out


# segments: (joint a, joint b, radius as a fraction of height, which shade, side): side 0 = centre,
# +1 left, -1 right; the side facing away from the camera is drawn first so near limbs cover far ones
_SEGS = [
    ("hip_l", "knee_l", 0.045, "pants", 1), ("knee_l", "ankle_l", 0.034, "pants", 1),
    ("ankle_l", "toe_l", 0.022, "shoes", 1),
    ("hip_r", "knee_r", 0.045, "pants", -1), ("knee_r", "ankle_r", 0.034, "pants", -1),
    ("ankle_r", "toe_r", 0.022, "shoes", -1),
    ("hip", "neck", None, "shirt", 0),
    ("sh_l", "elbow_l", 0.028, "shirt", 1), ("elbow_l", "wrist_l", 0.023, "skin", 1),
    ("sh_r", "elbow_r", 0.028, "shirt", -1), ("elbow_r", "wrist_r", 0.023, "skin", -1),
]  # fmt: skip
_A = np.array([J[s[0]] for s in _SEGS])
_B = np.array([J[s[1]] for s in _SEGS])
_R = np.array([s[2] or 0.0 for s in _SEGS])
_PART = [s[3] for s in _SEGS]
_SIDE = np.array([s[4] for s in _SEGS])


@dataclass(frozen=True)
class Look:
    """How a person looks: height (m), build and grey shades of clothes, skin and hair."""

    height: float
    build: float
    shirt: int
    pants: int
    skin: int
    hair: int
    shoes: int


def draw_body(painter: Painter, joints_w: np.ndarray, heading: np.ndarray, look: Look, to_mask: bool) -> None:
    """Draw a body given world joints; limbs on the far side first, the head last."""
    h = look.height
    # facing the camera (walking along Z) shows the full shoulder width; walking across shows the side
    torso_r = h * look.build * (0.07 + 0.035 * abs(heading[1]))
    radius = np.where(_R > 0, _R * h * look.build, torso_r)
    far_side = 1 if heading[0] > 0 else -1  # the body's left points away from the camera when heading +X
    rank = np.where(far_side == _SIDE, 0, np.where(_SIDE == 0, 1, 2))
    order = np.argsort(rank, kind="stable")
    shades = {"shirt": look.shirt, "pants": look.pants, "skin": look.skin, "shoes": look.shoes}
    painter.capsules(
        joints_w[_A[order]], joints_w[_B[order]], radius[order], [shades[_PART[i]] for i in order], to_mask
    )
    painter.spheres(joints_w[[J["head"]]], np.array([HEAD_R * h]), [look.hair], to_mask)


# ---------------------------------------------------------------- static background


@dataclass
class Structure:
    """A static object that can stand in front of a moving one: its pixels and depth."""

    z: float
    y0: int
    x0: int
    pixels: np.ndarray
    alpha: np.ndarray  # bool


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = rng.standard_normal(shape).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return n / max(float(n.std()), 1e-6)


PLAZA_END = 13.5  # the paved plaza reaches this depth; grass beyond it
HEDGE_Z = 21.0
PATH_B = np.array([[-1.0, PLAZA_END - 0.3], [-3.0, 16.0], [-8.0, 19.0]])  # a footpath across the grass


def build_background(cam: Camera, rng: np.random.Generator) -> tuple[np.ndarray, list[Structure]]:
    """The static scene as uint8 grey, and the structures that occlude people behind them."""
    # texels of 3 cm at 128 columns, coarser for smaller pictures (the near edge has ~33 pixels per metre)
    res, x0, z0, z1 = 4.0 / cam.width, -18.0, 4.0, 27.0
    tw, th = int((-2 * x0) / res), int((z1 - z0) / res)
    X = x0 + res * (np.arange(tw, dtype=np.float32) + 0.5)
    Z = z0 + res * (np.arange(th, dtype=np.float32) + 0.5)
    XX, ZZ = np.meshgrid(X, Z)
    # plaza: 3 m concrete slabs, each a slightly different shade, with dark joints between them
    slab = (np.floor(XX / 3.0) * 7 + np.floor(ZZ / 3.0) * 13).astype(np.int64)
    slab_shade = rng.normal(0, 4.0, 64)[slab % 64]
    edge = 1.5 - max(0.03, res / 2)  # joints 6 cm wide, at least a texel
    joint = (np.abs(((XX + 1.5) % 3.0) - 1.5) > edge) | (np.abs(((ZZ + 1.5) % 3.0) - 1.5) > edge)
    plaza = 168 + slab_shade + 4 * _smooth_noise(rng, (th, tw), 0.05 / res) - 28 * joint
    grass = 98 + 9 * _smooth_noise(rng, (th, tw), 0.03 / res) + 7 * _smooth_noise(rng, (th, tw), 0.75 / res)
    path = 150 + 5 * _smooth_noise(rng, (th, tw), 0.05 / res)
    tex = np.where(ZZ < PLAZA_END, plaza, grass)
    dist = _polyline_distance(np.stack([XX, ZZ], -1), PATH_B)
    tex = np.where((dist < 0.9) & (ZZ >= PLAZA_END), path, tex)
    tex = np.where(np.abs(ZZ - PLAZA_END) < 0.12, 190, tex)  # kerb
    # lawns in the near corners, as on the real footpath
    tex = np.where((XX < -1.9) & (ZZ < 8.2) & (XX < -1.9 - (8.2 - ZZ) * 0.1), grass, tex)
    tex = np.where((XX > 2.1) & (ZZ < 7.4), grass, tex)
    ss = 4  # supersample the warp, then average down: no aliasing of the texture at far depths
    big = Camera(cam.height * ss, cam.width * ss, cam.z_near, cam.z_far, cam.half_view)
    hom = big.ground_homography(x0, z0, res)
    ground = cv2.warpPerspective(tex.astype(np.float32), hom, (big.width, big.height), flags=cv2.INTER_LINEAR)
    img = cv2.resize(ground, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    shadow = np.zeros(img.shape, np.uint8)
    structures: list[Structure] = []
    for z, draw in sorted(_structures(), key=lambda zd: -zd[0]):
        # drawn onto the background itself, so anti-aliased edges blend with what lies behind them
        cover = np.zeros_like(img)
        draw(Painter(cam, img, shadow=shadow, mask=cover))
        ys, xs = np.nonzero(cover)
        if len(ys) == 0:
            continue
        sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        structures.append(Structure(z, int(ys.min()), int(xs.min()), img[sl].copy(), cover[sl] > 0))

    soft = cv2.GaussianBlur(shadow, (0, 0), 0.8).astype(np.float32) / 255
    out = img.astype(np.float32) * (1 - SHADOW_DARKNESS * soft)
    for s in structures:
        sl = (slice(s.y0, s.y0 + s.pixels.shape[0]), slice(s.x0, s.x0 + s.pixels.shape[1]))
        texture = 1 + 0.12 * _smooth_noise(rng, s.pixels.shape, 0.7)
        s.pixels = np.clip(np.rint(s.pixels * texture), 0, 255).astype(np.uint8)
        out[sl][s.alpha] = s.pixels[s.alpha]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), structures


def _structures() -> list[tuple[float, Callable[[Painter], None]]]:
    """Static objects as (depth, draw): a building wall and a hedge at the back, lamp posts, a bench and
    a bin along the kerb, two trees on the lawn."""

    def boxed(centre, length, width, height, shades):
        corners = box_corners(centre, (1.0, 0.0), length, width, height)
        return lambda p: p.box(corners, np.array(shades), True)

    def lamp(x: float, z: float):
        def draw(p: Painter) -> None:
            p.capsules(np.array([[x, 0, z]]), np.array([[x, 4.2, z]]), np.array([0.07]), [45], True)
            p.capsules(np.array([[x, 4.2, z]]), np.array([[x + 0.5, 4.3, z]]), np.array([0.09]), [40], True)

        return draw

    def tree(x: float, z: float, crown: float):
        def draw(p: Painter) -> None:
            p.capsules(np.array([[x, 0, z]]), np.array([[x, 2.6, z]]), np.array([0.15]), [55], True)
            p.spheres(np.array([[x, 2.6 + crown * 0.8, z]]), np.array([crown]), [62], True)

        return draw

    kerb = PLAZA_END
    return [
        (24.0, boxed((0, 24.5), 40, 1.0, 8.0, [0, 180, 200, 0, 170, 170])),
        (HEDGE_Z, boxed((0, HEDGE_Z + 0.4), 36, 0.8, 1.2, [0, 80, 60, 0, 55, 55])),
        (kerb + 0.3, lamp(-3.7, kerb + 0.3)),
        (kerb + 0.3, lamp(3.4, kerb + 0.3)),
        (kerb + 0.35, boxed((1.3, kerb + 0.6), 1.8, 0.5, 0.45, [0, 120, 90, 0, 80, 80])),
        (kerb + 0.25, boxed((-2.5, kerb + 0.5), 0.5, 0.5, 0.9, [0, 70, 55, 0, 50, 50])),
        (18.0, tree(4.6, 18.0, 1.8)),
        (20.0, tree(-5.8, 20.0, 2.2)),
    ]


def _polyline_distance(p: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance from points (..., 2) to a polyline (K, 2)."""
    best = np.full(p.shape[:-1], np.inf, np.float32)
    for a, b in zip(line[:-1], line[1:]):
        ab = b - a
        t = np.clip(((p - a) @ ab) / float(ab @ ab), 0, 1)
        best = np.minimum(best, np.linalg.norm(p - (a + t[..., None] * ab), axis=-1))
    return best
