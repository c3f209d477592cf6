"""Caution coverage now vs. with the growth caution kept only for a material change (outside [0.8, 1.25]).

Usage: python caution_coverage.py E2E.json [E2E.json …]   (files written by Testing/Scripts/pcr_end_to_end.py)
"""
import json, sys, pandas as pd
rows = []
for s in sys.argv[1:]:
    t = pd.DataFrame(json.load(open(s))["per_exam"]); t["set"] = s.rsplit("/", 1)[-1]; rows.append(t)
t = pd.concat(rows).dropna(subset=["automatic_probability"]).reset_index(drop=True)
t["dp"] = (t.automatic_probability - t.reference_probability).abs()
growth = t.automatic_volume_ml / t.automatic_grown_from_ml
small = t.automatic_grown_from_ml.notna() & growth.between(0.8, 1.25)
now = t.automatic_cautions.map(set)
new = [c - {"outline_caution"} if sm else c for c, sm in zip(now, small)]
t["told_now"], t["told_new"] = now.map(bool), pd.Series(new).map(bool)
bad = (t.automatic_dice < 0.7) | (t.dp > 0.1)
for s, g in t.groupby("set"):
    b = bad[g.index]
    print(f"{s}: exams {len(g)}, told now {g.told_now.mean():.2f} -> {g.told_new.mean():.2f}; bad {int(b.sum())} told now {g.told_now[b].mean():.2f} -> {g.told_new[b].mean():.2f}")
lose = t.told_now & ~t.told_new
print(f"pooled: told now {t.told_now.mean():.3f} -> {t.told_new.mean():.3f}; bad {int(bad.sum())} told {t.told_now[bad].mean():.3f} -> {t.told_new[bad].mean():.3f}; "
      f"losing every caution: {int(lose.sum())} exams, Dice mean {t.automatic_dice[lose].mean():.3f}, bad among them {int((lose & bad).sum())}; "
      f"exams without any caution now: Dice mean {t.automatic_dice[~t.told_now].mean():.3f}")
print(t[lose & bad][["set", "patient_id", "automatic_dice", "dp"]].round(3).to_string())
