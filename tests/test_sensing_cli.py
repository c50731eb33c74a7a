"""End to end through the CLI on the embedded synthetic field, and every bad input giving exit code 2 with
nothing written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rl_cs.cli import main
from rl_cs.report.sensing import report

QUICK = ["--set", "synthetic.num_cycles=12", "--set", "calibration.seeds=1", "--set", "grid.workers=1"]


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return exit_.value.code


def test_train_and_report_on_the_synthetic_default(tmp_path, capsys):
    code = run_cli(["train", "qcota", "--world", "sensing", "--results-dir", str(tmp_path), "--name", "quick",
                    "--set", "grid.attribute_counts=[2, 3]", "--set", "grid.inference=[knn, svr]", *QUICK])
    assert code == 0
    folder = tmp_path / "quick"
    experiment = json.loads((folder / "experiment.json").read_text())
    assert experiment["world"] == "sensing" and experiment["kind"] == "grid"
    assert experiment["calibration"]["normalisation"] in ("mean", "std", "range")
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 2 * 2 * 1 * 5  # counts x inference x P x schemes, one seed
    assert set(runs["scheme"]) == {"qcota", "oo-mta", "gps-ta", "ewa-ta", "uns-ta"}
    assert (runs["error"] > 0).all() and (runs["cost_km"] >= 0).all()
    assert len(pd.read_parquet(folder / "cycles.parquet")) == len(runs) * 12
    calibration = pd.read_csv(folder / "calibration.csv")
    assert len(calibration) == 3 * 2 * 3 and calibration["distance"].is_monotonic_increasing
    capsys.readouterr()
    assert report(folder, tmp_path / "report") == 0
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "Table 2" in printed and "| QCO-TA | 8 |" in printed
    assert "(0.153;" in printed  # the paper's QCO-TA figure beside ours (2 attributes, KNN, P = 8)
    tables = pd.read_csv(tmp_path / "report" / "tables.csv")
    assert set(tables["table"]) == {"error", "cost_km"} and (tmp_path / "report" / "error_over_cycles.png").stat().st_size > 0
    uniform = tables[(tables.scheme == "uns-ta") & (tables.table == "cost_km")]
    assert (uniform["paper_ratio_to_qcota"] > 1).all()


def test_evaluate_writes_the_cell_log(tmp_path, capsys):
    log = tmp_path / "log.parquet"
    assert run_cli(["evaluate", "gps-ta", "--world", "sensing", "--episodes", "2", "--log", str(log), *QUICK]) == 0
    cells = pd.read_parquet(log)
    assert len(cells) == 2 * 12 * 8 and cells["cell"].between(0, 23).all()
    assert "GPS-TA" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--set", "grid.participants=[8, 30]"], "grid.participants: P = 30 but the data has only 24 cells"),
    (["--set", "grid.attribute_order=[WS, TEMP, NO2, PM10]"], "attribute 'NO2' is not in the data"),
    (["--set", "grid.inference=[kriging]"], "unknown inference method 'kriging'"),
    (["--set", "qcota.delta=1.5"], "qcota.delta: delta = 1.5 is outside (0, 1)"),
    (["--set", "qcota.dleta=0.9"], "did you mean 'delta'"),
    (["--data-dir", "MISSING"], "does not exist"),
    (["--config", "no-such.yaml"], "config file not found"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    argv = [a.replace("MISSING", str(tmp_path / "missing")) for a in argv]
    code = run_cli(["train", "qcota", "--world", "sensing", "--results-dir", str(tmp_path / "out"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, message", [
    ('"Station.ID","Date","UTMX","UTMY","WS","TEMP","EMI"\n1,"01/10/05",1,1,1,1,1\n', "missing column(s) PM10"),
    ('"Station.ID","Date","UTMX","UTMY","WS","TEMP","EMI","PM10"\n1,"1 Oct 2005",1,1,1,1,1,1\n', "unparseable date"),
])
def test_bad_data_file_exits_2_naming_the_file(tmp_path, capsys, text, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "Piemonte_data_byday.csv").write_text(text)
    code = run_cli(["train", "qcota", "--world", "sensing", "--data-dir", str(tmp_path / "data"),
                    "--results-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Piemonte_data_byday.csv" in err
    assert not (tmp_path / "out").exists()


def test_unknown_method_and_scheme(tmp_path, capsys):
    assert run_cli(["train", "qcot", "--world", "sensing", "--results-dir", str(tmp_path / "out")]) == 2
    assert "did you mean 'qcota'" in capsys.readouterr().err
    assert run_cli(["evaluate", "uns", "--world", "sensing"]) == 2
    assert not (tmp_path / "out").exists()
