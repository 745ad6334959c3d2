"""Issue 6's bar for `tiny` trained 30 minutes on a 2-core CPU, read from ``python -m evaluate`` reports:
≥ 2 dB above copy-last in PSNR at t = 8, 16 and 30, and object persistence ≥ 0.5 at every t ≤ 16.

    python worldmodel/recipes/tiny_bar.py reports/tiny30_t0/report.json reports/tiny30_t1/report.json

Each report needs a ``copy-last`` row (``evaluate`` adds it) and one or more ``checkpoint:`` rows; every
checkpoint row is checked against the copy-last row of its own report. Exit status 0 when every row
passes, 1 otherwise.
"""
import argparse
import json
import sys

HORIZONS = (8, 16, 30)  # t at which PSNR must be MARGIN above copy-last (1-based, as in the issue)
MARGIN = 2.0  # dB
PERSIST_UNTIL, PERSIST_MIN = 16, 0.5


def check(row: dict, copy: dict) -> tuple[bool, str]:
    psnr, ref = row["curves"]["psnr"], copy["curves"]["psnr"]
    margins = [psnr[t - 1] - ref[t - 1] for t in HORIZONS]
    persist = min(row["curves"]["persistence"][:PERSIST_UNTIL])
    ok = all(m >= MARGIN for m in margins) and persist >= PERSIST_MIN
    gains = " / ".join(f"{m:+.2f}" for m in margins)
    text = (f"{row['predictor']}: PSNR − copy-last at t = {'/'.join(map(str, HORIZONS))}: {gains} dB "
            f"(bar ≥ +{MARGIN}); lowest persistence up to t = {PERSIST_UNTIL}: {persist:.2f} "
            f"(bar ≥ {PERSIST_MIN}) → {'PASS' if ok else 'FAIL'}")
    return ok, text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", help="report.json files written by python -m evaluate")
    args = p.parse_args(argv)
    passed = True
    for path in args.reports:
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"{path}: not a readable evaluate report ({e})") from None
        scenes = report.get("scenes") if isinstance(report, dict) else None
        if not isinstance(scenes, dict):
            raise SystemExit(f"{path}: not an evaluate report (it has no 'scenes')")
        for scene, block in scenes.items():
            rows = {r["predictor"]: r for r in block["rows"]}
            if "copy-last" not in rows:
                raise SystemExit(f"{path}: {scene} has no copy-last row")
            models = [r for name, r in rows.items() if name.startswith("checkpoint:")]
            if not models:
                raise SystemExit(f"{path}: {scene} has no checkpoint: row")
            for row in models:
                ok, text = check(row, rows["copy-last"])
                passed &= ok
                print(f"{scene} {text}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
