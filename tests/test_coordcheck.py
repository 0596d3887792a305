"""The coordinate check (initbench coordcheck, issue 35): on the real data, under the standard
parametrization the output layer's change grows with width and under μP no layer's does; its
files, its picture and its refusals."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import initbench as ib
from initbench.cli import app

runner = CliRunner()


def test_sp_grows_the_output_layer_with_width_and_mup_grows_none(data_dir: Path, tmp_path: Path) -> None:
    found = ib.coordcheck("default", widths=(32, 64, 128, 256, 512), seeds=4, train_samples=2000,
                          data_dir=data_dir, out=tmp_path / "cc", progress=False)
    assert 3 in found.growing["sp"] and found.growing["mup"] == []
    coords = pd.read_csv(tmp_path / "cc" / "coords.csv")
    assert len(coords) == 2 * 5 * 4 * 3 * 3  # parametrizations x widths x seeds x steps x layers
    assert (coords[coords["step"] == 0]["change"] == 0).all()  # the start: nothing has moved yet
    # At the base width (64) μP is the standard parametrization, bit for bit.
    at_base = coords[coords["width"] == 64].pivot_table(index=["seed", "step", "layer"], columns="parametrization",
                                                         values="coord")
    assert (at_base["sp"] == at_base["mup"]).all()
    assert {"coordcheck_sp.png", "coordcheck_mup.png"} <= {p.name for p in (tmp_path / "cc").iterdir()}
    info = json.loads((tmp_path / "cc" / "coordcheck.json").read_text())
    assert info["config"]["widths"] == [32, 64, 128, 256, 512] and info["growing"] == found.growing
    reopened = ib.open(tmp_path / "cc")
    assert isinstance(reopened, ib.CoordCheck) and "no layer grows" in str(reopened)


@pytest.mark.parametrize(("args", "words"), [
    (["--widths", "64"], "give two widths or more, rising"),
    (["--widths", "128,64"], "give two widths or more, rising"),
    (["--widths", "0,64"], "give two widths or more, rising"),
    (["--parametrization", "sp,muP"], "name each of sp, mup at most once"),
    (["--coord-steps", "1"], "give 2 to 100 steps"),
    (["--network", "cnn"], "--parametrization mup is written for mlp networks only"),
])
def test_bad_input_is_one_paragraph_and_exit_2(args: list[str], words: str, data_dir: Path) -> None:
    result = runner.invoke(app, ["coordcheck", "--data-dir", str(data_dir), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert words in " ".join(result.output.split()), result.output
