"""The README's results table: generated from the results files, and in step with
them."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import results_table  # noqa: E402


def test_readme_table_matches_the_results_files():
    assert results_table.readme_table() == results_table.table()
    assert results_table.main(["--check"]) == 0


def _write(folder, name, **fields):
    run = {"config": "mlp-x", "rule": "exact", "seed": 0, "history": {"epoch": [1]},
           "settings": {"tau": 0.1, "v_th": 1.5, "T": 30, "T_test": 30,
                        "surrogate": "gaussian", "a": 1.0, "epochs": 3}}
    run.update(fields)
    (folder / name).write_text(json.dumps(run))


def test_rows_group_seeds_and_skip_runs_without_a_test_score(tmp_path):
    _write(tmp_path, "a0.json", seed=0, final_test_acc=0.985, protocol="full")
    _write(tmp_path, "a1.json", seed=1, final_test_acc=0.987, protocol="full")
    _write(tmp_path, "sel.json", config="sel", final_test_acc=None,
           protocol="validation")
    _write(tmp_path, "lin.json", final_test_acc=0.99, protocol="full",
           settings={"tau": 0.1, "v_th": 1.5, "T": 30, "T_test": 30, "carry": "linear",
                     "surrogate": "gaussian", "a": 1.0, "epochs": 3})
    rows = results_table.rows(tmp_path)
    assert [r[:2] for r in rows] == [["`mlp-x`", "exact"],
                                     ["`mlp-x`", "exact, linear carry"]]
    exact = rows[0]
    assert exact[5] == "2" and exact[4] == "60,000 digits, test once"
    # mean 98.60, s = 0.001414: 1.96 sqrt(0.986 * 0.014 / 1e4 + 2e-6 / 2) = 0.0030
    assert exact[6] == "98.60 ± 0.30"
    assert exact[7] == "98.89 (consistent with)"
    assert rows[1][6] == "99.00 ± 0.20" and rows[1][7] == "98.89 (consistent with)"


def test_check_fails_when_the_readme_differs(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{results_table.START}\n| old |\n{results_table.END}\n")
    assert results_table.main(["--check", "--readme", str(readme)]) == 1
    assert "differs from the results files" in capsys.readouterr().err
    readme.write_text("no table here\n")
    with pytest.raises(SystemExit, match="no results table"):
        results_table.main(["--check", "--readme", str(readme)])
