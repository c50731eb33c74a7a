"""Loader of the Piemonte air-quality data (QCO-TA §5.1): 24 stations x 182 days, one cycle per day.

Units are kept as published: coordinates in UTM zone 32N kilometres, TEMP in Kelvin, WS in m/s. Missing
PM10 values stay NaN (the sensing world excludes them from the error and never fills them silently).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rl_cs.data.sensing_field import PAPER_ATTRIBUTES, SensingField
from rl_cs.errors import InputError, require

DATA_FILE = "Piemonte_data_byday.csv"
REQUIRED_COLUMNS = ("Station.ID", "Date", "UTMX", "UTMY") + PAPER_ATTRIBUTES


def piemonte_file(data_dir: str | Path) -> Path:
    """The daily data file inside ``data_dir`` (the piemonte folder itself or its parent, e.g. ../shared/data)."""
    folder = Path(data_dir)
    require(folder.is_dir(), "--data-dir", f"folder {folder} does not exist",
            f"give the folder holding {DATA_FILE}, e.g. ../shared/data/piemonte")
    for candidate in (folder / DATA_FILE, folder / "piemonte" / DATA_FILE):
        if candidate.is_file():
            return candidate
    raise InputError("--data-dir", f"no {DATA_FILE} in {folder} or {folder / 'piemonte'}",
                     "give the folder holding the Piemonte daily data, e.g. ../shared/data/piemonte")


def load_piemonte(data_dir: str | Path) -> SensingField:
    """Read the daily file into a ``SensingField`` (cells sorted by Station.ID, cycles by date)."""
    path = piemonte_file(data_dir)
    table = pd.read_csv(path)
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    require(not missing, str(path), f"missing column(s) {', '.join(missing)}",
            f"the file needs {', '.join(REQUIRED_COLUMNS)}")
    dates = pd.to_datetime(table["Date"], format="%d/%m/%y", errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise InputError(str(path), f"unparseable date '{table['Date'].iloc[row]}' in row {row + 2}",
                         "dates are dd/mm/yy, e.g. 01/10/05")
    table = table.assign(Date=dates)
    require(not table.duplicated(["Station.ID", "Date"]).any(), str(path),
            "a station has two rows for one date", "keep one row per station and day")
    stations = np.sort(table["Station.ID"].unique())
    days = np.sort(table["Date"].unique())
    coords = table.groupby("Station.ID")[["UTMX", "UTMY"]]
    require((coords.nunique() == 1).all().all(), str(path), "a station's UTMX/UTMY changes between rows",
            "give each station one position")
    grid = (table.set_index(["Date", "Station.ID"])[list(PAPER_ATTRIBUTES)]
            .reindex(pd.MultiIndex.from_product([days, stations])))
    values = grid.to_numpy(dtype=float).reshape(len(days), len(stations), len(PAPER_ATTRIBUTES))
    coords_km = coords.first().loc[stations].to_numpy(dtype=float)
    return SensingField(coords_km, values, PAPER_ATTRIBUTES, np.asarray(days, dtype="datetime64[D]"),
                        f"Piemonte ({path}, {len(stations)} stations, {len(days)} days)")
