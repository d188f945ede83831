"""Read a CSV with pandas, write /outputs/report.xlsx with openpyxl: the data and a summary sheet."""

import sys
from pathlib import Path

import pandas as pd

source = Path(sys.argv[1])
frame = pd.read_csv(source)
summary = pd.DataFrame(
    {
        "measure": ["rows", *[f"mean {c}" for c in frame.select_dtypes("number")]],
        "value": [len(frame), *frame.select_dtypes("number").mean().round(3).tolist()],
    }
)
target = Path("/outputs/report.xlsx")
with pd.ExcelWriter(target, engine="openpyxl") as writer:
    frame.to_excel(writer, sheet_name="Data", index=False)
    summary.to_excel(writer, sheet_name="Summary", index=False)
print(f"wrote {target} from {source.name}: {len(frame)} rows")
