"""Judge the papers' claims (configs/papers/*.toml) and print the README's table.

    python scripts/papers.py                  # all ten, into results/papers/<name> (resumes)
    python scripts/papers.py he-2015 --smoke  # one, in seconds (the machinery, not the verdict)

Each claim's picture goes into its sweep's folder as claim.png (--pictures DIR: there
instead, as <name>.png, e.g. docs/images/papers when publishing).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from initbench import papers
from initbench.storage import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=[[], *papers.CLAIMS], help="claims to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results/papers"), help="where the sweeps go")
    parser.add_argument("--pictures", type=Path, default=None, help="where the pictures go (default: each sweep's "
                        "folder)")
    parser.add_argument("--smoke", action="store_true", help="each claim's seconds-long settings")
    args = parser.parse_args()
    rows = ["| Paper | Claim | Setup here | initbench measured | Verdict |", "| :-- | :-- | :-- | :-- | :-- |"]
    for name in args.names or papers.CLAIMS:
        claim = papers.CLAIMS[name]
        tic = time.perf_counter()
        out = args.out / (f"{name}-smoke" if args.smoke else name)
        finding = papers.reproduce(claim, out, claim.smoke if args.smoke else (), progress=True)
        if finding.figure is not None:
            if args.pictures is not None:
                args.pictures.mkdir(parents=True, exist_ok=True)
            finding.figure.savefig(out / "claim.png" if args.pictures is None else args.pictures / f"{name}.png",
                                   dpi=110)
        seeds = int(papers.read(out).frame["seed"].nunique())
        print(f"{name}: {time.perf_counter() - tic:.0f} s", flush=True)
        rows.append(f"| {claim.paper} | {claim.claim} | {claim.statement['setup']}; "
                    f"[`{claim.config.name}`](configs/papers/{claim.config.name}) "
                    f"| {finding.measured} ({seeds} seeds, {machine.cpu_model()}) | **{finding.verdict}**: "
                    + "; ".join(map(str, finding.tests)) + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
