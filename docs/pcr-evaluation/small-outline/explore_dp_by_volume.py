"""Throwaway: |Δp| (automatic vs reference mask) by the automatic outline's volume and its ratio to the size sphere."""
import json, numpy as np, pandas as pd
from pathlib import Path
from responseai.io import read_image
rows = []
for name, e2e in [("dev291", "e2e-dev291-1.4.0.json"), ("gs297", "e2e-gs297-1.4.0.json")]:
    d = json.load(open(f"docs/pcr-evaluation/outline-refit/{e2e}"))
    man = pd.read_csv(f"/tmp/breast-v2/{name}/manifest.csv").set_index("patient_id")
    for c in d["per_exam"]:
        pid = c["patient_id"]
        if c.get("automatic_probability") is None: continue
        auto = read_image(f"/tmp/breast-v2/{name}/auto/{pid}.nrrd"); ref = read_image(Path(f"/tmp/breast-v2/{name}") / man.loc[pid, "mask"])
        a, r = auto.array > 0, ref.array > 0
        dice = 2 * (a & r).sum() / max(a.sum() + r.sum(), 1)
        vol = a.sum() * np.prod(auto.spacing) / 1000; rvol = r.sum() * np.prod(ref.spacing) / 1000
        size = man.loc[pid, "tumour_size_mm"]; sphere = np.pi / 6 * size ** 3 / 1000 if size == size else np.nan
        rows.append(dict(set=name, pid=pid, dice=dice, vol=vol, rvol=rvol, ratio=vol / sphere, dp=abs(c["automatic_probability"] - c["reference_probability"])))
t = pd.DataFrame(rows); t.to_csv("/tmp/dp_by_volume.csv", index=False)
print(len(t))
for lo, hi in [(0, 1), (1, 2), (2, 3), (3, 5), (5, 15), (15, 1e9)]:
    m = (t.vol >= lo) & (t.vol < hi)
    print(f"auto vol {lo}-{hi}: n={m.sum()} mean|dp|={t.dp[m].mean():.3f} median={t.dp[m].median():.3f} p>0.1: {(t.dp[m]>0.1).mean():.2f} dice mean {t.dice[m].mean():.2f}")
for lo, hi in [(0, 0.25), (0.25, 0.5), (0.5, 1), (1, 2), (2, 1e9)]:
    m = (t.ratio >= lo) & (t.ratio < hi)
    print(f"ratio {lo}-{hi}: n={m.sum()} mean|dp|={t.dp[m].mean():.3f} p>0.1: {(t.dp[m]>0.1).mean():.2f} dice {t.dice[m].mean():.2f}")
