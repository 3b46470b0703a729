"""The training command line: flags override presets; bad input is one line, exit code 2, no traceback."""
import subprocess
import sys

import pytest

from facevae import train
from facevae.train import build_parser, config_from_args


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "facevae.train", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def run_main(args, capsys) -> tuple[int, str]:
    """``python -m facevae.train ARGS`` in this process (no 10 s TensorFlow start per case): (exit code, stderr)."""
    try:
        code = train.main(list(args))
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar' (choose from 'synthetic', 'ffhq'"),
        (["--image-size", "100"], "argument --image-size: invalid choice: 100 (choose from 28, 32, 64, 128, 256)"),
        (["--epochs", "0"], "argument --epochs: must be a positive integer; received 0"),
        (["--batch-size", "-4"], "argument --batch-size: must be a positive integer; received -4"),
        (["--dataset", "ffhq"], "--dataset ffhq needs --data-dir; prepare shards with: python -m data_prep ffhq"),
        (["--dataset", "mnist", "--data-dir", "/no/such/dir"], "--data-dir /no/such/dir does not exist"),
        (["--decoder", "pixelcnn"], "decoder='pixelcnn' models binary single-channel images"),
        (["--sigma", "sharp"], "argument --sigma: must be 'learned', 'optimal' or a positive number; received 'sharp'"),
        (["--sigma", "-0.1"], "argument --sigma: must be 'learned', 'optimal' or a positive number; received '-0.1'"),
        (["--filters", "64,128"], "argument --filters: must be four positive integers such as 64,128,128,256"),
        (["--prior", "vamp"], "argument --prior: invalid choice: 'vamp' (choose from 'standard', 'gmm', 'flow')"),
        (["--prior-components", "0"], "argument --prior-components: must be a positive integer; received 0"),
        (["--decoder-kernel", "1"], "decoder_kernel must be an integer >= 2. Received: decoder_kernel=1"),
        (["--decoder-resize-blocks", "5"], "decoder_resize_blocks must be an integer from 0 to 4 (the decoder has "
                                           "four blocks). Received: decoder_resize_blocks=5"),
        (["--precise-bn-batches", "-1"], "argument --precise-bn-batches: must be an integer >= 0; received -1"),
    ],
)
def test_bad_flags_give_one_line_and_exit_code_2(tmp_path, args, expected, capsys):
    code, stderr = run_main([*args, "--output-dir", str(tmp_path)], capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert expected in lines[-1], lines
    assert len([l for l in lines if l.startswith("python -m facevae.train: error")]) == 1


@pytest.mark.integration
@pytest.mark.parametrize("args", [["--sigma", "sharp"], ["--decoder-kernel", "1"]])  # argparse's, and validation's
def test_a_bad_flag_is_one_line_and_exit_code_2_from_a_real_process(tmp_path, args):
    done = run_cli(*args, "--output-dir", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_flags_override_the_preset():
    args = build_parser().parse_args(["--dataset", "mnist", "--flows", "5", "--flow-mode", "amortized", "--epochs", "2"])
    config = config_from_args(args)
    assert (config.model.flows, config.model.flow_mode, config.train.epochs) == (5, "amortized", 2)
    assert (config.data.image_size, config.model.likelihood) == (28, "bernoulli")
    args = build_parser().parse_args(["--dataset", "binarized_mnist", "--decoder", "pixelcnn", "--pixel-layers", "2",
                                      "--pixel-window", "5"])
    model = config_from_args(args).model
    assert (model.decoder, model.pixel_layers, model.pixel_window) == ("pixelcnn", 2, 5)


def test_face_flags_override_the_preset():
    args = build_parser("folder").parse_args([
        "--dataset", "folder", "--data-dir", "x", "--sigma", "optimal", "--sigma-shared", "--filters", "64,128,128,256",
        "--decoder-kernel", "3", "--prior", "flow", "--prior-flows", "6", "--precise-bn-batches", "0", "--no-flip"])
    config = config_from_args(args)
    m = config.model
    assert (m.sigma, m.sigma_shared, m.filters, m.decoder_kernel, m.prior, m.prior_flows) == (
        "optimal", True, (64, 128, 128, 256), 3, "flow", 6)
    assert config.train.precise_bn_batches == 0 and config.data.flip is False
    defaults = config_from_args(build_parser("folder").parse_args(["--dataset", "folder", "--data-dir", "x"]))
    assert (defaults.model.sigma, defaults.model.prior, defaults.data.flip) == ("learned", "gmm", True)
    # the published recipe stays reachable exactly
    published = config_from_args(build_parser().parse_args(["--dataset", "folder", "--data-dir", "x", "--likelihood",
                                                            "mse", "--r-loss-factor", "10000", "--sigma", "0.2",
                                                            "--prior", "standard", "--prior-components", "3"]))
    assert (published.model.likelihood, published.model.r_loss_factor, published.model.sigma) == ("mse", 10000.0, 0.2)
    assert published.model.prior_components == 3
    text = build_parser("folder").format_help()
    assert "(default: learned)" in text and "(default: flip on)" in text and "(default: 32,64,128,256)" in text


def test_help_explains_every_flag():
    text = build_parser().format_help()
    for action in build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings
    assert "--r-loss-factor" in text and "--resume" in text
