"""Write the yearly sunspot numbers bundled with statsmodels as a CSV for the forecasting task.

The series is statsmodels.datasets.sunspots (yearly mean sunspot number, 1700-2008, 309 values,
no gaps), which ships inside the statsmodels package: nothing is downloaded. Output: a header line
`time,value`, then one row per year in time order (time = the year as an integer, value = the
sunspot number as printed by Python's float repr). No missing values. Needs statsmodels
(pip install -e ".[bench]").

    python benchmarks/series_data.py --out runs/sunspots.csv
"""

import argparse
import csv
import sys
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="CSV file to write (its folder is created)")
    args = ap.parse_args()
    try:
        from statsmodels.datasets import sunspots
    except ImportError:
        sys.exit('series_data.py: needs statsmodels; install it with: pip install -e ".[bench]"')

    frame = sunspots.load_pandas().data  # columns YEAR, SUNACTIVITY (both float)
    years, values = frame["YEAR"].tolist(), frame["SUNACTIVITY"].tolist()
    # The consumers assume a complete series with one row per step; check rather than trust.
    if any(v != v for v in values) or any(b - a != 1 for a, b in zip(years, years[1:])):
        sys.exit("series_data.py: the bundled sunspot series has gaps or NaN; this statsmodels differs from 0.14-0.15")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["time", "value"])
        writer.writerows((int(year), value) for year, value in zip(years, values))
    print(f"wrote {len(values)} rows ({int(years[0])}-{int(years[-1])}, values {min(values)} to {max(values)}) "
          f"to {args.out}")


if __name__ == "__main__":
    main()
