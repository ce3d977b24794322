"""How well a trained run's discriminator tells real next frames from its generator's predictions.

    python experiments/d_health.py runs/ped2/stgan-s0 runs/ped2/stgan-s1 ... [--which best] [--json FILE]

Training logs ``val_d_acc``, D's accuracy with its logit thresholded at 0; it read 0.50 in every run. That
number cannot tell a D at chance from one whose logits are all shifted to one side of 0. This script
scores each run's own held-out validation windows (the same evenly spaced ``train.val_windows`` windows
that training validated on) and reports the AUROC of real against predicted frames for D's global logit
and for its mean per-pixel logit, which no offset can hide, next to the accuracy at 0. Training now logs
the same AUROCs as ``val_d_auc`` and ``val_d_pixel_auc``; this script measures runs trained before that.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from stvad._io import atomic_write_json
from stvad.checkpoint import load_run
from stvad.data.layouts import open_dataset
from stvad.data.windows import WindowDataset, split_train_val
from stvad.train import d_aucs, d_logits, validation_indices

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))  # the benchmarks' helpers
from perf_common import machine  # noqa: E402


@torch.no_grad()
def health(run_dir: str, which: str) -> dict:
    run = load_run(run_dir, which=which)
    d, G, D = run.config.data, run.generator, run.discriminator
    val = WindowDataset(
        split_train_val(open_dataset(run.meta["data_root"]).train, d.val_fraction, d.T)[1],
        d.T, d.size, d.channels,
    )  # fmt: skip
    idx = validation_indices(len(val), run.config.train.val_windows)
    logits = []
    for k in range(0, len(idx), 16):
        x = torch.stack([val[i][0] for i in idx[k : k + 16]])
        y = torch.stack([val[i][1] for i in idx[k : k + 16]])
        logits.append(d_logits(D(y, x), D(G(x), x)))
    got = torch.cat(logits).numpy()
    auc_global, auc_mean_pixel = d_aucs(got)
    return {
        "run": run_dir,
        "checkpoint": which,
        "step": run.meta["step"],
        "d_context": run.config.model.d_context,
        "windows": len(got),
        "acc_at_0": float(((got[:, 0] > 0).mean() + (got[:, 1] < 0).mean()) / 2),
        "auc_global": auc_global,
        "auc_mean_pixel": auc_mean_pixel,
        "mean_logit_real": float(got[:, 0].mean()),
        "mean_logit_fake": float(got[:, 1].mean()),
    }


HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--which", default="best", help="best | last")
    p.add_argument("--json", type=Path, default=HERE / "results" / "d_health.json")
    a = p.parse_args()
    rows = []
    for r in a.runs:
        rows.append(health(r, a.which))
        h = rows[-1]
        print(
            f"{r:32} step {h['step']:5}  acc@0 {h['acc_at_0']:.3f}  AUROC global {h['auc_global']:.3f}"
            f"  mean-pixel {h['auc_mean_pixel']:.3f}",
            flush=True,
        )
    atomic_write_json(
        a.json,
        {
            "command": " ".join(["python experiments/d_health.py", *sys.argv[1:]]),
            **machine(),
            "torch_threads": torch.get_num_threads(),
            "runs": rows,
        },
    )
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
