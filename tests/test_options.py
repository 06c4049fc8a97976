"""Options are declared once; every command checks every option before any work.

The walk over invalid values is generated from the declarations, so an
option that a new method or command adds is covered without editing this file.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from tfi2i import config as run_config
from tfi2i.cli import compare as compare_cli
from tfi2i.cli import eval as eval_cli
from tfi2i.cli import export as export_cli
from tfi2i.cli import import_ as import_cli
from tfi2i.cli import report as report_cli
from tfi2i.cli import train as train_cli
from tfi2i.cli import translate as translate_cli
from tfi2i.cli.common import parse_args
from tfi2i.config import PLATFORM_OPTIONS, load_preset, parse_hparams, resolve_config
from tfi2i.errors import UserError
from tfi2i.methods import METHODS
from tfi2i.options import Option

from conftest import REPO


def invalid_values(option):
    """Values the declaration itself says are wrong (none for a free-form string)."""
    if option.type is bool:
        return ["maybe"]
    values = []
    if option.type in (int, float):
        values.append("abc")
        if option.type is int:
            values.append("1.5")
        if option.min is not None:
            values.append(str(option.min - 1))
        if option.max is not None:
            values.append(str(option.max + 1))
    if option.choices is not None:
        values.append("bogus" if option.type in (str, list) else str(max(option.choices) + 1))
    if option.must_exist:
        values.append("/nonexistent/tfi2i/path")
    return values


def assert_one_line_error(options, argv, name, check):
    with pytest.raises(UserError) as info:
        parse_args(options, argv, check=check)
    message = str(info.value)
    assert "\n" not in message, message
    assert name in message, (name, message)
    return message


@pytest.fixture
def command_setups(tmp_path):
    """For each command: (options, valid base arguments, check)."""
    images = tmp_path / "images"
    images.mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"method": "pix2pix"}))
    setups = {
        "translate": (translate_cli.OPTIONS, [f"--model={run_dir}", f"--input={images}",
                                              f"--output={tmp_path / 'out'}"],
                      translate_cli.check),
        "export": (export_cli.OPTIONS, [f"--run_dir={run_dir}"], export_cli.check),
        "import": (import_cli.OPTIONS,
                   [f"--pth={os.path.join(REPO, 'tests', 'data', 'torch', 'unet_zip.pth')}",
                    f"--output={tmp_path / 'imported'}"], import_cli.check),
        "eval --model": (eval_cli.OPTIONS, [f"--model={run_dir}", f"--data_dir={images}"],
                         eval_cli.check),
        "eval --fake_dir": (eval_cli.OPTIONS, [f"--real_dir={images}", f"--fake_dir={images}"],
                            eval_cli.check),
        "report": (report_cli.OPTIONS, [f"--runs={run_dir}", f"--output={tmp_path / 'report'}"],
                   report_cli.check),
        "study-merge": (report_cli.MERGE_OPTIONS, [f"--results={run_dir / 'config.json'}"],
                        report_cli.check_merge),
    }
    setups["compare"] = (compare_cli.OPTIONS, ["--runs=cyclegan", f"--data_dir={images}",
                                               f"--output={tmp_path / 'cmp'}", "--max_steps=1"],
                         compare_cli.check)
    for method in METHODS:
        setups[f"train --method={method}"] = (
            train_cli.OPTIONS, [f"--method={method}", "--dataset=sample"], train_cli.check)
    return setups


def test_every_command_is_walked(command_setups):
    # A new console script must join command_setups, so that its options are walked too.
    with open(os.path.join(REPO, "setup.py")) as f:
        text = f.read()
    modules = set(re.findall(r'"tfi2i-[\w-]+=tfi2i\.cli\.(\w+):\w+"', text))
    walked = {command.split()[0] for command in command_setups}
    missing = sorted(m for m in modules if m.rstrip("_") not in walked)
    assert modules and not missing, f"add these commands to command_setups: {missing}"


def test_every_option_of_every_command_rejects_invalid_values_in_one_line(command_setups):
    walked = 0
    for command, (options, base, check) in command_setups.items():
        parse_args(options, base, check=check)  # The base line itself is valid.
        for option in options:
            for value in invalid_values(option):
                argv = [a for a in base if not a.startswith(f"--{option.name}=")]
                if command.startswith("eval") and option.name in ("real_dir", "fake_dir",
                                                                   "label_dir", "model",
                                                                   "data_dir"):
                    argv = []  # Folder and model mode exclude each other: test it alone.
                assert_one_line_error(options, argv + [f"--{option.name}={value}"],
                                      option.name, check)
                walked += 1
    assert walked > 100, walked


def test_required_options_are_named_when_missing(command_setups):
    for command, (options, base, check) in command_setups.items():
        for option in options:
            if option.required:
                argv = [a for a in base if not a.startswith(f"--{option.name}=")]
                message = assert_one_line_error(options, argv, option.name, check)
                assert "required" in message


@pytest.mark.parametrize("argv, name", [
    # The most common first mistake: a small crop with the default 256 px U-Net.
    (["--data_dir=.", "--crop_size=64", "--load_size=72"], "netG"),
    (["--dataset=sample", "--load_size=32"], "load_size"),
    (["--dataset=not_a_dataset"], "dataset"),
    (["--dataset=sample", "--hparams=lambda_L1"], "hparams"),
    (["--dataset=sample", "--hparams=not_an_option=1"], "not_an_option"),
    (["--dataset=sample", "--hparams=lambda_L1=abc"], "lambda_L1"),
    (["--dataset=sample", "--gan_mode=wgan"], "gan_mode"),
    (["--dataset=sample", "--best_metric=fid"], "best_metric"),
    (["--dataset=sample", "--n_epochs=0", "--n_epochs_decay=0"], "n_epochs"),
    (["--dataset=sample", "stray"], "stray"),
    (["--dataset=sample", "--deterministic", "--jit_compile"], "jit_compile"),
    (["--method=cyclegan", "--dataset=horse2zebra", "--eval_metrics=fid,psnr"], "psnr"),
    (["--method=cyclegan", "--dataset=horse2zebra", "--input_nc=1"], "lambda_identity"),
    ([], "dataset"),
])
def test_train_rejects_options_that_do_not_fit_together(argv, name):
    assert_one_line_error(train_cli.OPTIONS, argv, name, train_cli.check)


def test_crop_size_error_names_generators_that_fit():
    with pytest.raises(UserError) as info:
        resolve_config("pix2pix", None, {"crop_size": 64, "load_size": 72})
    assert "unet_64" in str(info.value) and "--crop_size=256" in str(info.value)
    assert resolve_config("pix2pix", None, {"crop_size": 64, "load_size": 72,
                                            "netG": "unet_64"})["netG"] == "unet_64"


def test_cli_prints_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tfi2i.cli.train", "--dataset=sample",
                           "--crop_size=64", "--netG=unet_256", f"--run_dir={tmp_path}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "netG=unet_256" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)  # Nothing was started.


def test_hparams_values_may_contain_commas():
    assert parse_hparams('lambda_L1=5,eval_metrics=["psnr","l1"],gan_mode=hinge') == {
        "lambda_L1": 5, "eval_metrics": ["psnr", "l1"], "gan_mode": "hinge"}
    assert parse_hparams("") == {}
    args, explicit = parse_args(train_cli.OPTIONS, [
        "--dataset=sample", '--hparams=eval_metrics=["psnr","l1"],lambda_L1=3'],
        check=train_cli.check)
    assert args.config["eval_metrics"] == ["psnr", "l1"] and args.config["lambda_L1"] == 3.0


def test_flags_are_the_declarations():
    names = [o.name for o in train_cli.OPTIONS]
    assert len(names) == len(set(names))
    expected = {o.name for o in PLATFORM_OPTIONS}
    for cls in METHODS.values():
        expected |= set(cls.option_names())
    assert expected <= set(names)
    # A flag's type follows its declaration: "abc" is no number for any numeric option.
    args, explicit = parse_args(train_cli.OPTIONS, ["--dataset=sample", "--lambda_L1=7",
                                                    "--noresume"], check=train_cli.check)
    assert explicit == {"dataset": "sample", "lambda_L1": 7.0, "resume": False}
    assert args.config["lambda_L1"] == 7.0 and args.config["netG"] == "unet_64"


def test_a_method_brings_its_options_in_one_declaration():
    """Adding an option to a method is one edit: its declaration in `options`."""
    from tfi2i.methods import Pix2Pix

    class WithExtra(Pix2Pix):
        """pix2pix with one more weight."""
        options = Pix2Pix.options + (
            Option("lambda_extra", float, 2.5, "An extra weight.", min=0.0),)

    model = WithExtra(netG="unet_32", ngf=8, ndf=8)
    assert model.hp.lambda_extra == 2.5 and model.get_config()["lambda_extra"] == 2.5
    assert WithExtra(netG="unet_32", lambda_extra="3").hp.lambda_extra == 3.0
    with pytest.raises(UserError, match="lambda_extra=-1"):
        WithExtra(lambda_extra=-1)
    with pytest.raises(UserError, match="lambda_typo"):
        WithExtra(lambda_typo=1)
    assert "lambda_extra (float, default 2.5)" in WithExtra.__doc__


def test_presets_hold_only_declared_options_that_differ_from_the_defaults():
    for method, cls in METHODS.items():
        preset = load_preset(method)
        declared = {o.name: o for o in run_config.run_options(cls)}
        for key, value in preset["defaults"].items():
            assert key in declared, (method, key)
            # Declared once: a preset repeating a default would be a second declaration.
            assert declared[key].check(value) != declared[key].default, (method, key)
        for dataset, values in preset["datasets"].items():
            assert set(values) <= set(declared), (method, dataset)
            config = resolve_config(method, dataset)  # Every preset passes the checks.
            for key, value in values.items():
                assert config[key] == declared[key].check(value)
        for name, values in preset["presets"].items():
            assert set(values) <= set(declared), (method, name)
            config = resolve_config(method, None, {"preset": name})
            for key, value in values.items():
                assert config[key] == declared[key].check(value), (method, name, key)
                # A preset changes what it names: repeating a default says nothing.
                assert declared[key].check(value) != declared[key].default, (method, name, key)


def test_resume_rule_comes_from_the_declarations():
    from tfi2i.methods import Pix2Pix

    keys = run_config.resumable_keys(Pix2Pix)
    assert {"max_steps", "n_epochs", "data_dir", "jit_compile"} <= keys
    assert not keys & {"crop_size", "netG", "lambda_L1", "batch_size", "direction"}
    saved = resolve_config("pix2pix", "sample", {"run_dir": "r"})
    with pytest.raises(UserError, match="crop_size"):
        run_config.merge_for_resume(saved, dict(saved, crop_size=32), {"crop_size"})
    merged = run_config.merge_for_resume(saved, dict(saved, max_steps=9), {"max_steps"})
    assert merged["max_steps"] == 9
    # A run saved before an option existed resumes with that option's value of today.
    older = {k: v for k, v in saved.items() if k != "unpaired"}
    assert run_config.merge_for_resume(older, saved, set())["unpaired"] is False


def test_lists_repeated_for_a_light_import_agree_with_their_modules():
    from tfi2i.data import PREPROCESS_MODES
    from tfi2i.training.strategy import STRATEGIES
    assert run_config.PREPROCESS_MODES == PREPROCESS_MODES
    assert run_config.STRATEGIES == STRATEGIES
    from tfi2i.export.tflite import FILE_TAGS
    assert set(export_cli.QUANTIZE) == set(FILE_TAGS)


def test_eval_modes_are_checked_before_anything_loads(tmp_path):
    for argv, name in ([[f"--model={tmp_path}"], "data_dir"],
                       [[f"--model={tmp_path}", f"--data_dir={tmp_path}",
                         f"--fake_dir={tmp_path}"], "fake_dir"],
                       [[f"--fake_dir={tmp_path}", "--metrics=fid"], "real_dir"],
                       [[], "Nothing to evaluate"]):
        assert_one_line_error(eval_cli.OPTIONS, argv, name, eval_cli.check)
