"""Loader of the Piemonte air-quality data (QCO-TA §5.1): 24 stations x 182 days, one cycle per day.

Units are kept as published: coordinates in UTM zone 32N kilometres, TEMP in Kelvin, WS in m/s. Missing
PM10 values stay NaN (the sensing world excludes them from the error and never fills them silently).

The file marks a missing measurement ``NA`` (R's marker, as published); an attribute value may be ``NA`` or
empty, anything else that is not a finite number (``n/a``, ``-``, ``inf``, text) is refused naming the file,
the column and the row, never read silently as missing. Station ids, dates and coordinates may not be missing.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from rl_cs.data.sensing_field import PAPER_ATTRIBUTES, SensingField
from rl_cs.errors import InputError, require

DATA_FILE = "Piemonte_data_byday.csv"
REQUIRED_COLUMNS = ("Station.ID", "Date", "UTMX", "UTMY") + PAPER_ATTRIBUTES
MISSING_MARKERS = ("NA", "")
"""How the file writes a missing attribute value (only attributes may be missing)."""


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
    table = read_table(path)
    dates = pd.to_datetime(table["Date"], format="%d/%m/%y", errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise InputError(str(path), f"unparseable date '{table['Date'].iloc[row]}' in row {row + 2}",
                         "dates are dd/mm/yy, e.g. 01/10/05")
    table = table.assign(Date=dates)
    stations_found = table["Station.ID"].nunique()
    require(stations_found >= 2, str(path), f"{stations_found} station(s); the sensing world needs at least 2 cells",
            "give the daily data of several stations")
    for name in PAPER_ATTRIBUTES:
        require(table[name].notna().any(), f"{path}, column {name}", "every value is missing (NA)",
                "the attribute needs at least one measurement")
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


def read_table(path: Path) -> pd.DataFrame:
    """The daily file with every required column checked: UTF-8, a header, data rows; ids and coordinates
    finite numbers, attributes finite numbers or NA. Errors name the file (and the column and data row)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(str(path), f"not UTF-8 text ({error.reason} at byte {error.start})",
                         "save the file as UTF-8 (the published file is plain ASCII)") from None
    except OSError as error:
        raise InputError(str(path), f"cannot read the file ({error.strerror})") from None
    require(text.strip() != "", str(path), "the file is empty",
            f"give the daily data with columns {', '.join(REQUIRED_COLUMNS)}")
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(str(path), f"not readable as CSV ({error})", "give a comma-separated file with a header row") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    require(not missing, str(path), f"missing column(s) {', '.join(missing)}",
            f"the file needs {', '.join(REQUIRED_COLUMNS)}")
    require(len(table) > 0, str(path), "has no data rows (only a header)", "give one row per station and day")
    for column in ("Station.ID", "UTMX", "UTMY", *PAPER_ATTRIBUTES):
        values = table[column].str.strip()
        may_miss = column in PAPER_ATTRIBUTES
        absent = values.isin(MISSING_MARKERS) if may_miss else pd.Series(False, index=values.index)
        numbers = pd.to_numeric(values.mask(absent), errors="coerce").astype(float)
        bad = (~absent & ~np.isfinite(numbers.to_numpy())).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            fix = ("write a number, or NA for a missing measurement" if may_miss
                   else "every row needs its station id and UTM coordinates (km) as numbers")
            raise InputError(f"{path}, column {column}",
                             f"data row {row + 1}: '{table[column].iloc[row]}' is not a finite number", fix)
        table[column] = numbers
    return table
