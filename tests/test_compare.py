"""tfi2i-compare: the same budget and the same scores for every entry, the table, reuse."""

import json
import os

import pytest

from tfi2i.cli.common import parse_args
from tfi2i.cli.compare import BASELINE, OPTIONS, check, compare, markdown_table, plan_runs
from tfi2i.errors import UserError

from conftest import write_ab_dataset

TINY = ("ngf=8,ndf=8,netG=resnet_6blocks,batch_size=2,save_every_steps=2,deterministic=True,"
        "val_batches=1")


def args_for(*argv):
    return parse_args(OPTIONS, list(argv), check=check)[0]


def test_plan_trains_two_way_methods_once_and_one_way_ones_per_direction(tmp_path):
    args = args_for("--runs=cyclegan:gan_only,pix2pix,simgan,bigan", f"--data_dir={tmp_path}",
                    "--output=out", "--max_steps=3", "--directions=BtoA,AtoB")
    plan = [(name, direction, scored) for _, name, _, _, direction, scored in plan_runs(args)]
    assert plan == [("cyclegan_gan_only", "BtoA", ["BtoA", "AtoB"]),
                    ("pix2pix_BtoA", "BtoA", ["BtoA"]), ("pix2pix_AtoB", "AtoB", ["AtoB"]),
                    ("simgan_BtoA", "BtoA", ["BtoA"]), ("simgan_AtoB", "AtoB", ["AtoB"]),
                    ("bigan", "BtoA", ["BtoA", "AtoB"])]


def test_methods_translate_the_ways_they_declare():
    from tfi2i.methods import METHODS

    for name, cls in METHODS.items():
        small = {k: v for k, v in dict(ngf=8, ndf=8).items() if k in cls.option_names()}
        model = cls(direction="BtoA", **small)
        ways = set(model.generators)
        assert ways == ({"BtoA", "AtoB"} if cls.bidirectional else {"BtoA"}), name
        # A multimodal method takes a code in every direction it translates (the export's
        # *_code signatures); a style encoder is optional.
        if model.latent_dim:
            assert set(model.code_generators) == ways, name
            assert set(model.style_encoders) <= ways, name
        else:
            assert not model.code_generators and not model.style_encoders, name


@pytest.mark.parametrize("argv, message", [
    (["--runs=cyclegan:gan_alone"], "'gan_alone' is not a preset of cyclegan"),
    (["--runs=cyclegann"], "Unknown method 'cyclegann'"),
    (["--runs=pix2pix,pix2pix"], "lists an entry twice"),
    (["--runs=pix2pix", "--metrics=fid,seg"], "needs --seg_direction"),
])
def test_bad_entries_are_refused_before_any_work(tmp_path, argv, message):
    with pytest.raises(UserError, match=message):
        args_for(*argv, f"--data_dir={tmp_path}", "--output=out", "--max_steps=3")


def test_compare_trains_scores_and_writes_the_pages(tmp_path):
    data = write_ab_dataset(tmp_path / "data", splits=(("train", 4), ("test", 3)))
    out = tmp_path / "out"
    # One unpaired entry end to end (the paired path differs only in the plan, above).
    argv = ["--runs=cyclegan:cycle_only", f"--data_dir={data}", f"--output={out}",
            "--max_steps=2", "--crop_size=32", "--directions=AtoB", "--metrics=fid",
            f"--hparams={TINY}"]
    table, text = compare(args_for(*argv))
    runs = table["runs"]
    assert sorted(runs) == ["cyclegan_cycle_only"]
    assert all(r["steps"] == 2 for r in runs.values())
    assert runs["cyclegan_cycle_only"]["options"]["lambda_gan"] == 0.0
    # The unpaired method read the paired files as two domains.
    config = json.loads((out / "runs" / "cyclegan_cycle_only" / "config.json").read_text())
    assert config["unpaired"] is True and config["preset"] == "cycle_only"
    for entry in (BASELINE, "cyclegan:cycle_only"):
        fid = table["scores"][entry]["AtoB"]["fid"]
        assert fid >= 0 and f"| {entry} |" in text
    for folder in ("input", "target", "cyclegan_cycle_only"):
        assert sorted(os.listdir(out / "images" / "AtoB" / folder)) == [
            "000.png", "001.png", "002.png"]
    assert json.loads((out / "table.json").read_text())["scores"] == json.loads(
        json.dumps(table["scores"]))
    # The result pages, with each entry's output.
    index = (out / "report" / "AtoB" / "index.html").read_text()
    assert "cyclegan:cycle_only" in index and (out / "report" / "AtoB" / "study.html").exists()
    # Run again with a larger budget: the existing run continues to it, not scored as it was.
    table, _ = compare(args_for(*[a if a != "--max_steps=2" else "--max_steps=3"
                                  for a in argv]))
    assert table["runs"]["cyclegan_cycle_only"]["steps"] == 3


def test_markdown_table_has_a_column_group_per_direction():
    rows = {BASELINE: {"AtoB": {"fid": 300.0}, "BtoA": {"fid": 250.5}},
            "cyclegan": {"AtoB": {"fid": 120.25, "seg_class_iou": 0.1}}}
    text = markdown_table(rows, ["AtoB", "BtoA"], ["fid", "seg"])
    lines = text.splitlines()
    assert lines[0] == "| entry | AtoB FID | AtoB seg class IoU | BtoA FID | BtoA seg class IoU |"
    assert lines[2] == f"| {BASELINE} | 300 |  | 250.5 |  |"
    assert lines[3] == "| cyclegan | 120.2 | 0.1 |  |  |"
