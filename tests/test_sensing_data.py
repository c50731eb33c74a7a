"""The Piemonte loader (real data when ../shared/data is present) and the synthetic default field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rl_cs.data.piemonte import load_piemonte
from rl_cs.data.sensing_field import PAPER_ATTRIBUTES, SyntheticFieldConfig, synthetic_field
from rl_cs.errors import InputError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PIEMONTE = SHARED_DATA / "piemonte"
needs_piemonte = pytest.mark.skipif(not (PIEMONTE / "Piemonte_data_byday.csv").is_file(),
                                    reason=f"Piemonte data not found at {PIEMONTE} (the shared data folder)")

HEADER = '"Station.ID","Date","A","UTMX","UTMY","WS","TEMP","HMIX","PREC","EMI","PM10"\n'


@needs_piemonte
@pytest.mark.real_data
def test_piemonte_loader_dates_units_and_missing_pm10():
    field = load_piemonte(SHARED_DATA)  # the parent folder works as well as piemonte/ itself
    assert field.values.shape == (182, 24, 4) and field.attributes == PAPER_ATTRIBUTES
    assert str(field.dates[0]) == "2005-10-01" and str(field.dates[-1]) == "2006-03-31"
    assert (np.diff(field.dates).astype(int) == 1).all()
    temperature = field.values[:, :, PAPER_ATTRIBUTES.index("TEMP")]
    assert 250 < temperature.min() and temperature.max() < 300  # Kelvin
    assert 300 < field.coords_km[:, 0].min() and field.coords_km[:, 1].max() < 5200  # UTM kilometres
    distances = field.distances_km()
    assert 5 < distances[distances > 0].min() and distances.max() < 250
    pm10 = field.values[:, :, PAPER_ATTRIBUTES.index("PM10")]
    assert np.isnan(pm10).sum() == 314
    assert not np.isnan(field.values[:, :, :3]).any()
    # station 1 on 01/10/05 (first row of the file): WS 0.9, TEMP 288.81, EMI 26.05, PM10 28
    np.testing.assert_allclose(field.values[0, 0], [0.9, 288.81, 26.05, 28.0])
    assert load_piemonte(PIEMONTE).values.shape == field.values.shape


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Piemonte_data_byday.csv").write_text(text)
    return folder


def test_loader_reads_a_small_file_and_keeps_gaps(tmp_path):
    folder = _write(tmp_path, HEADER + '1,"01/10/05",95,469.45,4972.85,0.9,288.81,1,0,26.05,28\n'
                    '2,"01/10/05",164,423.48,4950.69,0.82,288.67,1,0,18.74,NA\n'
                    '1,"02/10/05",95,469.45,4972.85,1.0,287.0,1,0,20.0,30\n')
    field = load_piemonte(folder)
    assert field.values.shape == (2, 2, 4)
    assert np.isnan(field.values[0, 1, 3])  # NA kept as missing
    assert np.isnan(field.values[1, 1]).all()  # station 2 has no row on day 2
    assert field.coords_km.tolist() == [[469.45, 4972.85], [423.48, 4950.69]]


@pytest.mark.parametrize("text, message", [
    ('"Station.ID","Date","UTMX","UTMY","WS","TEMP","EMI"\n1,"01/10/05",1,1,1,1,1\n', "missing column(s) PM10"),
    (HEADER + '1,"2005-10-01",95,469.45,4972.85,0.9,288.81,1,0,26.05,28\n', "unparseable date '2005-10-01'"),
    (HEADER + '1,"31/02/05",95,469.45,4972.85,0.9,288.81,1,0,26.05,28\n', "unparseable date '31/02/05'"),
])
def test_loader_rejects_bad_files_naming_them(tmp_path, text, message):
    folder = _write(tmp_path, text)
    with pytest.raises(InputError) as error:
        load_piemonte(folder)
    assert message in str(error.value) and "Piemonte_data_byday.csv" in str(error.value)


def test_loader_rejects_a_folder_without_the_file(tmp_path):
    with pytest.raises(InputError, match="no Piemonte_data_byday.csv"):
        load_piemonte(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_piemonte(tmp_path / "nowhere")


def test_synthetic_field_is_seeded_and_piemonte_like():
    config = SyntheticFieldConfig(num_cells=10, num_cycles=30, seed=4)
    first, again = synthetic_field(config), synthetic_field(config)
    np.testing.assert_array_equal(first.values, again.values)
    assert not np.array_equal(first.values, synthetic_field(SyntheticFieldConfig(10, 30, seed=5)).values)
    assert first.values.shape == (30, 10, 4) and first.attributes == PAPER_ATTRIBUTES
    assert 260 < np.nanmean(first.values[:, :, 1]) < 300  # Kelvin, like the real data
    assert (first.values[:, :, [0, 2]] > 0).all()
    assert np.isnan(first.values[:, :, 3]).any() and not np.isnan(first.values[:, :, :3]).any()
