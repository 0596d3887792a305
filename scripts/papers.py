"""Reproduce the papers' claims (configs/papers/*.toml) and print the README's table.

    python scripts/papers.py                  # all five, into results/papers/<name> (resumes)
    python scripts/papers.py he-2015 --smoke  # one, in seconds (the machinery, not the verdict)

Each claim's picture goes to docs/images/papers/<name>.png (--pictures to change).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from initbench import papers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=[[], *papers.CLAIMS], help="claims to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results/papers"), help="where the sweeps go")
    parser.add_argument("--pictures", type=Path, default=Path("docs/images/papers"))
    parser.add_argument("--smoke", action="store_true", help="each claim's seconds-long settings")
    args = parser.parse_args()
    args.pictures.mkdir(parents=True, exist_ok=True)
    rows = ["| Paper | Claim | Config | initbench measured | Verdict |", "| :-- | :-- | :-- | :-- | :-- |"]
    for name in args.names or papers.CLAIMS:
        claim = papers.CLAIMS[name]
        tic = time.perf_counter()
        out = args.out / (f"{name}-smoke" if args.smoke else name)
        finding = papers.reproduce(claim, out, claim.smoke if args.smoke else (), progress=True)
        if finding.figure is not None:
            finding.figure.savefig(args.pictures / f"{name}.png", dpi=110)
        print(f"{name}: {time.perf_counter() - tic:.0f} s", flush=True)
        rows.append(f"| {claim.paper} | {claim.claim} | [`{claim.config.name}`](configs/papers/{claim.config.name}) "
                    f"| {finding.measured} | {finding.verdict} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
