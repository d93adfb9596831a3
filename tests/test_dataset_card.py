"""`xtml simulate` writes a dataset card that says what the data are, and the card changes no data hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xtml.cli import main
from xtml.data import open_dataset
from xtml.data.card import CARD_NAME, dataset_card
from xtml.runs import dataset_hash

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.toml"


def test_simulate_writes_a_card_that_matches_the_data(tmp_path: Path, capsys) -> None:
    run = tmp_path / "d"
    assert (
        main(["simulate", str(CONFIG), "--n", "20", "--out", str(run), "--seed", "7", "--no-progress"]) == 0
    )
    out = run / "data.zarr"  # the store in the run folder
    assert f"card     {out / CARD_NAME}" in capsys.readouterr().out
    card = (out / CARD_NAME).read_text()
    ds = open_dataset(run)
    assert ds.path == out
    labels = np.asarray(ds.array("labels"))
    assert "20 simulated X-ray timing observations" in card
    assert "dataset seed 7" in card
    for k, name in enumerate(ds.class_names):  # the class table counts the rows of each class
        assert f"| {name} | {int((labels == k).sum())} |" in card
    assert "qpo.nu0: loguniform in [5, 40]" in card
    assert "## Intended use" in card and "## Known limits" in card  # noqa: PT018
    # the card is a file beside the arrays: the data's content hash ignores it
    before = dataset_hash(out)
    (out / CARD_NAME).write_text(card + "\nedited")
    assert dataset_hash(out) == before
    assert dataset_card(ds) == card
