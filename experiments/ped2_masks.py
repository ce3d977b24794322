"""UCSD Ped2 with its pixel masks: how well the full anomaly map localises, and how much of Ped2 is static.

    python experiments/ped2_masks.py [--shared ../shared/data] [--runs runs/ped2-skip] [--seeds 0 1 2]

The Ped2 copy in ``shared/data/ped2`` (FFP layout) has frame labels but no pixel masks; the original UCSD
masks (``Test001_gt`` ... ``Test012_gt``, one bmp per frame) are in ``gt/ucsd/ucsd_pixel_gt.tar.xz``. This
script extracts them into a temporary folder and assembles the original UCSD layout there from symbolic
links (the FFP frames, the masks, ``UCSDped2.m``), so nothing is copied into the repository. For each seed's
full-method run trained by ``bench/ped2.py`` it then

- evaluates every test frame (``stvad eval``'s ``evaluate``), which with masks present adds the pixel-level
  AUROC of the full anomaly map: all pixels of all scored frames pooled, the masks resized to the model's
  128x128 by nearest neighbour. Its frame-level numbers must equal ``bench/results/ped2.json``'s, as the
  frames and labels are the same; the script stops if they do not;
- splits the anomalous frames into static and moving ones by their masks
  (``experiments/static_anomalies.py``), for comparison with the synthetic set.

Writes ``experiments/results/ped2_masks.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from static_anomalies import study
from stvad._io import atomic_write_json
from stvad.data.layouts import open_dataset
from stvad.engine import Scorer
from stvad.errors import StvadError
from stvad.evaluate import evaluate

OUT = Path(__file__).resolve().parent / "results" / "ped2_masks.json"
REFERENCE = Path(__file__).resolve().parent / "results" / "ped2.json"


def ucsd_ped2(shared: Path, into: Path) -> Path:
    """The original UCSD layout of Ped2's test set under ``into``, built from ``shared`` by links."""
    archive = shared / "gt" / "ucsd" / "ucsd_pixel_gt.tar.xz"
    frames = shared / "ped2" / "testing" / "frames"
    m_file = shared / "gt" / "ucsd" / "UCSDped2.m"
    for need in (archive, frames, m_file):
        if not need.exists():
            raise StvadError("not found (the shared Ped2 data this bench reads)", need)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/UCSDped2/Test/" in m.name]
        tar.extractall(into / "masks", members=members, filter="data")
    masks = into / "masks" / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Test"
    test = into / "UCSDped2" / "Test"
    test.mkdir(parents=True)
    for k in range(1, 13):
        (test / f"Test{k:03d}").symlink_to((frames / f"{k:02d}").resolve())
        (test / f"Test{k:03d}_gt").symlink_to(masks / f"Test{k:03d}_gt")
    (test / "UCSDped2.m").symlink_to(m_file.resolve())
    return into


def reference_micro(seed: int) -> float | None:
    """The full method's frame-level micro AUROC for ``seed`` in bench/results/ped2.json, if recorded."""
    if not REFERENCE.is_file():
        return None
    for run in json.loads(REFERENCE.read_text()).get("per_seed", []):
        if run.get("seed") == seed:
            return run["results"]["full"]["auroc_micro"]
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default="../shared/data")
    p.add_argument("--runs", default="runs/ped2-skip")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--json", default=str(OUT))
    a = p.parse_args()
    t0 = time.perf_counter()
    per_seed = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = ucsd_ped2(Path(a.shared), Path(tmp))
            ds = open_dataset(root)
            for seed in a.seeds:
                run = Path(a.runs) / f"stgan-s{seed}"
                res = evaluate(run, root, progress=False)
                micro = res["results"]["full"]["auroc_micro"]
                ref = reference_micro(seed)
                if ref is not None and abs(ref - micro) > 1e-9:
                    raise StvadError(
                        f"seed {seed}: frame-level micro AUROC {micro:.6f} here but {ref:.6f} in "
                        f"{REFERENCE.name}: not the same run or not the same frames",
                        run,
                    )
                split = study(Scorer.from_run(run), ds, [0.05, 0.2])
                per_seed.append(
                    {
                        "seed": seed,
                        "run": str(run),
                        "checkpoint": res["protocol"]["checkpoint"],
                        "auroc_micro": micro,
                        "pixel_auroc": res["results"]["full"]["pixel_auroc"],
                        "static_split": split["splits"],
                    }
                )
                print(
                    f"seed {seed}: frame micro AUROC {100 * micro:.1f}, pixel AUROC "
                    f"{100 * per_seed[-1]['pixel_auroc']:.1f}; static (mask change < 0.05): "
                    f"{split['splits'][0]['static_frames']} of {split['anomalous_frames']} anomalous frames",
                    flush=True,
                )
    except StvadError as e:
        sys.exit(f"error: {e}")
    pix = [100 * r["pixel_auroc"] for r in per_seed]
    out = {
        "command": " ".join(["python experiments/ped2_masks.py", *sys.argv[1:]]),
        "protocol": {
            "pixel_auroc": "full anomaly map, all pixels of all scored frames pooled, at 128x128; UCSD masks "
            "resized by nearest neighbour; first 4 frames of each video dropped",
            "static": "anomalous frame whose mask changed by less than the threshold (xor / union) since "
            "the previous frame",
        },
        "pixel_auroc_mean": statistics.mean(pix),
        "pixel_auroc_sd": statistics.stdev(pix) if len(pix) > 1 else 0.0,
        "seeds": per_seed,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(a.json, out)
    print(f"pixel AUROC {out['pixel_auroc_mean']:.1f} ± {out['pixel_auroc_sd']:.1f}; wrote {a.json}")


if __name__ == "__main__":
    main()
