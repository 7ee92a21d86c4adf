"""The `codec` command as a user meets it: outputs, progress, and one-line errors."""

import io

import numpy as np
import pytest
from PIL import Image

from codec.cli.main import app
from codec.bitstream import Bitstream
from codec.registry import DEFAULT_MODEL
from tests.helpers import assert_one_line_error, image_folder, natural_image, run, runner


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_compress_then_decompress(tiny_model, image_file, tmp_path):
    result = run("compress", image_file, "--model", "tiny", "--verify")
    assert result.exit_code == 0, result.output
    assert "bpp" in result.stdout and "PSNR" in result.stdout and "MS-SSIM n/a" in result.stdout
    compressed = image_file.with_suffix(".lic")
    assert Bitstream.from_bytes(compressed.read_bytes()).model == "tiny"
    result = run("decompress", compressed, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    from PIL import Image

    assert Image.open(tmp_path / "out.png").size == (96, 72)


def test_verify_reports_ms_ssim_on_large_enough_images(tiny_model, tmp_path):
    path = tmp_path / "big.png"
    natural_image(200, 170).save(path)
    result = run("compress", path, "--model", "tiny", "--verify")
    assert result.exit_code == 0 and "MS-SSIM 0." in result.stdout


def test_existing_output_needs_force(tiny_model, image_file):
    target = image_file.with_suffix(".lic")
    target.write_bytes(b"keep me")
    assert_one_line_error(run("compress", image_file, "--model", "tiny"), "already exists")
    assert target.read_bytes() == b"keep me"
    assert run("compress", image_file, "--model", "tiny", "--force").exit_code == 0
    assert target.read_bytes() != b"keep me"


def test_folder_of_images(tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        natural_image(40 + i, 30, seed=i).save(folder / f"im{i}.png")
    (folder / "notes.txt").write_text("not an image")
    result = run("compress", folder, "--model", "tiny", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im0.lic", "im1.lic", "im2.lic"]
    result = run("decompress", tmp_path / "out", "-o", tmp_path / "decoded")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "decoded").iterdir()) == ["im0.lic.png", "im1.lic.png", "im2.lic.png"]


def test_missing_input(tiny_model, tmp_path):
    assert_one_line_error(run("compress", tmp_path / "nope.png", "--model", "tiny"), "no such file")
    assert not (tmp_path / "nope.lic").exists()


def test_non_image_input(tiny_model, tmp_path):
    path = tmp_path / "text.png"
    path.write_text("hello")
    assert_one_line_error(run("compress", path, "--model", "tiny"), "not an image")
    assert not path.with_suffix(".lic").exists() and not leftovers(tmp_path)


def test_unknown_model(codec_home, image_file):
    assert_one_line_error(run("compress", image_file, "--model", "nope"), "unknown model 'nope'")
    assert not image_file.with_suffix(".lic").exists()


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "empty"])
def test_damaged_files_fail_cleanly(tiny_model, image_file, tmp_path, damage):
    assert run("compress", image_file, "--model", "tiny").exit_code == 0
    compressed = image_file.with_suffix(".lic")
    data = compressed.read_bytes()
    damaged = {
        "truncate": data[: len(data) // 2],
        "flip": data[:-10] + bytes([data[-10] ^ 4]) + data[-9:],
        "foreign": image_file.read_bytes(),
        "empty": b"",
    }[damage]
    compressed.write_bytes(damaged)
    target = tmp_path / "decoded.png"
    result = run("decompress", compressed, "-o", target)
    assert_one_line_error(result, {"truncate": "truncated", "flip": "CRC32", "foreign": "not a codec file", "empty": "truncated"}[damage])
    assert not target.exists() and not leftovers(tmp_path)


def test_unknown_output_format(tiny_model, image_file, tmp_path):
    assert run("compress", image_file, "--model", "tiny").exit_code == 0
    assert_one_line_error(run("decompress", image_file.with_suffix(".lic"), "-o", tmp_path / "x.abc"), "unknown image format")


def test_models_lists_user_models(tiny_model):
    result = run("models")
    assert result.exit_code == 0 and "tiny" in result.stdout


def test_train_resume_and_register(codec_home, tmp_path, image_file):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        natural_image(80, 80, seed=i).save(data / f"{i}.png")
    checkpoint = tmp_path / "run.ckpt"
    common = ["train", "--data", data, "--lmbda", 0.01, "--out", checkpoint, "--N", 8, "--M", 16, "--batch-size", 2, "--crop", 64]
    result = run(*common, "--steps", 2)
    assert result.exit_code == 0, result.output
    result = run(*common, "--steps", 3, "--name", "mine")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stderr and "registered model mine" in result.stdout
    assert run("compress", image_file, "--model", "mine").exit_code == 0
    packed = tmp_path / "packed.ckpt"
    result = run("pack", checkpoint, "-o", packed)
    assert result.exit_code == 0 and "at step 3" in result.stdout, result.output
    assert_one_line_error(run("pack", checkpoint, "-o", packed), "exists")
    assert_one_line_error(run("pack", tmp_path / "none.ckpt", "-o", tmp_path / "p.ckpt"), "no such checkpoint")
    assert_one_line_error(run("pack", image_file, "-o", tmp_path / "p.ckpt"), "not a readable training checkpoint")
    assert not (tmp_path / "p.ckpt").exists()
    result = run(*[packed if arg == checkpoint else arg for arg in common], "--steps", 4)
    assert result.exit_code == 0 and "resuming" in result.stderr, result.output


def test_train_errors(codec_home, tmp_path):
    out = tmp_path / "run.ckpt"
    assert_one_line_error(run("train", "--data", tmp_path / "none", "--lmbda", 0.01, "--out", out), "not a directory")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out, "--metric", "psnr"), "unknown metric")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out, "--crop", 96), "multiple of 64")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out, "--hyper-block", 6),
                          "--hyper-block 6: hyper_block must be 0 or a positive multiple of 4")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out, "--hyper-block", 8, "--crop", 64), "multiple of 128")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out, "--ema", 1), "--ema must be")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out, "--device", "tpu"), "unknown --device 'tpu'")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out, "--precision", "fp16"), "unknown --precision 'fp16'")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out, "--minutes", 0), "--minutes must be positive")
    out.write_text("not a checkpoint")
    (tmp_path / "im.png").write_bytes(b"")
    assert_one_line_error(run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", out), "not a readable training checkpoint")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_train_refuses_cuda_without_one(codec_home, tmp_path):
    result = run("train", "--data", tmp_path, "--lmbda", 0.01, "--out", tmp_path / "run.ckpt", "--device", "cuda")
    assert_one_line_error(result, "--device cuda: this machine has no CUDA device")
    assert not (tmp_path / "run.ckpt").exists()


def test_conversions_are_noted(tiny_model, tmp_path):
    path = tmp_path / "alpha.png"
    image = natural_image(30, 20).convert("RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))
    image.save(path)
    result = run("compress", path, "--model", "tiny")
    assert result.exit_code == 0, result.output
    assert "note:" in result.stderr and "transparency flattened onto white" in result.stderr


def test_train_from_a_registered_model(tiny_model, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    natural_image(80, 80).save(data / "0.png")
    result = run("train", "--data", data, "--lmbda", 0.05, "--out", tmp_path / "ft.ckpt", "--steps", 1,
                 "--batch-size", 1, "--crop", 64, "--init", "tiny", "--name", "tuned")
    assert result.exit_code == 0, result.output
    assert "starting from the weights of model tiny" in result.stderr
    from codec.registry import get_card

    card, start = get_card("tuned"), get_card("tiny")
    assert card.config["N"] == 16 and card.training["recipe"]["init"] == "tiny"
    assert card.training["started_from"] == {"name": "tiny", "sha256": start.sha256, "training": start.training}
    resumed = run("train", "--data", data, "--lmbda", 0.05, "--out", tmp_path / "ft.ckpt", "--steps", 2,
                  "--batch-size", 1, "--crop", 64, "--name", "tuned2")
    assert resumed.exit_code == 0 and "resuming" in resumed.stderr, resumed.output


def test_train_adds_a_hyperprior_block_to_a_model_without_one(dataset, tmp_path):
    """--init of a model without blocks may add one (it starts neutral); a model's own blocks stay."""
    from codec.training.checkpoint import Checkpoint

    plain, blocked = tmp_path / "plain.ckpt", tmp_path / "blocked.ckpt"
    assert tiny_checkpoint(dataset, plain).exit_code == 0
    result = tiny_checkpoint(dataset, blocked, 1, "--init", plain, "--hyper-attention", "sge", "--hyper-attention-in", "h_a")
    assert result.exit_code == 0, result.output
    saved = Checkpoint.load(blocked)["config"]
    assert (saved["hyper_attention"], saved["hyper_attention_in"]) == ("sge", "h_a")
    assert_one_line_error(tiny_checkpoint(dataset, tmp_path / "other.ckpt", 1, "--init", blocked, "--hyper-attention", "gc"),
                          f"--init {blocked} has hyper-attention sge in h_a: it cannot take --hyper-attention gc")
    assert not (tmp_path / "other.ckpt").exists()


def test_train_adds_a_checkerboard_context_to_a_variable_rate_model(dataset, tmp_path, codec_home, image_file):
    from codec.training.checkpoint import Checkpoint

    def variable_rate(out, *options):
        return run("train", "--data", dataset, "-o", out, "--arch", "gained-mean-scale-hyperprior", "--N", 8, "--M", 16,
                   "--batch-size", 1, "--crop", 64, "--steps", 1, *options)

    plain, context = tmp_path / "vr.ckpt", tmp_path / "cb.ckpt"
    assert variable_rate(plain).exit_code == 0
    result = variable_rate(context, "--init", plain, "--arch", "gained-checkerboard-hyperprior")
    assert result.exit_code == 0 and "starting from the weights" in result.stderr, result.output
    assert Checkpoint.load(context)["config"]["arch"] == "gained-checkerboard-hyperprior"
    assert run("export", context, "--name", "cbtiny").exit_code == 0
    coded, decoded = tmp_path / "photo.lic", tmp_path / "back.png"
    assert run("compress", image_file, "-o", coded, "--model", "cbtiny", "-q", 37.5).exit_code == 0
    result = run("decompress", coded, "-o", decoded)
    assert result.exit_code == 0 and Image.open(decoded).size == Image.open(image_file).size, result.output


def test_batch_in_worker_processes_writes_what_one_process_does(tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        natural_image(80 + 16 * i, 64, seed=i).save(folder / f"{i}.png")
    (folder / "0-empty.png").write_bytes(b"")  # first: reported, and the batch goes on
    outputs = {}
    for jobs in (1, 2):
        result = run("compress", folder, "--model", "tiny", "--jobs", jobs, "-o", tmp_path / f"out{jobs}")
        assert_one_line_error(result, f"{folder / '0-empty.png'}: not an image file")
        outputs[jobs] = {p.name: p.read_bytes() for p in (tmp_path / f"out{jobs}").iterdir()}
    assert len(outputs[1]) == 3 and outputs[1] == outputs[2]


def test_targets_say_what_happened_and_a_missed_one_fails(image_file):
    """With the shipped default model. A budget every quality fits, or a PSNR every quality
    reaches, is met at an end of the range, and says so; one that none meets fails, writing
    nothing, unless --closest asks for the nearest file."""
    target = image_file.with_suffix(".lic")
    result = run("compress", image_file, "--target-bpp", 100)
    assert result.exit_code == 0 and "(target 100 bpp: q100, the highest quality, stays within it)" in result.stdout, result.output
    result = run("compress", image_file, "--target-psnr", 1, "--force")
    assert result.exit_code == 0 and "(target 1 dB: q0, the lowest quality, already gives " in result.stdout, result.output
    target.unlink()
    for option, value, fragment in (("--target-psnr", 99, "no quality reaches 99 dB: the closest, quality 100, gives "),
                                    ("--target-bpp", 0.001, "no quality fits in 0.001 bpp: the smallest file, quality 0, is "),
                                    ("--size", 100, "no quality fits in 100 bytes: the smallest file, quality 0, is ")):
        result = run("compress", image_file, option, value)
        assert_one_line_error(result, f"{image_file}: {fragment}")
        assert "(--closest writes it)" in result.stderr and not target.exists()
    result = run("compress", image_file, "--target-psnr", 99, "--closest")
    assert result.exit_code == 0 and "(target 99 dB: missed: q100, the highest quality, gives " in result.stdout, result.output
    result = run("compress", image_file, "--size", 100, "--closest", "--force")
    assert result.exit_code == 0 and "(target 100 bytes: missed: q0 is the smallest file)" in result.stdout, result.output
    result = run("compress", image_file, "--size", 1500, "--force")
    assert result.exit_code == 0 and "(target 1,500 bytes: met at q" in result.stdout, result.output
    assert 0.98 * 1500 <= target.stat().st_size <= 1500


@pytest.mark.parametrize("args, fragment", [
    (("-q", 3, "--target-bpp", 1), "at most one of"),
    (("--target-bpp", 0.5, "--target-psnr", 30), "at most one of"),
    (("--size", 500, "--target-bpp", 1), "at most one of --quality, --target-bpp, --size and --target-psnr"),
    (("--size", 0), "must be a positive number"),
    (("-q", 30, "--closest"), "--closest goes with a target"),
    (("--target-psnr", -1), "must be a positive number"),
    (("--target-bpp", "nan"), "must be a positive number"),
    (("-q", 101), "from 0 to 100"),
    (("-q", "nan"), "a number from 0 to 100"),
    (("-q", 30, "--model", "tiny"), "codes at one rate"),
    (("--effort", 10), "effort must be an integer from 0 to 9"),
    (("--effort", -1), "effort must be an integer from 0 to 9"),
    (("--effort", 1, "--model", "tiny"), "no search of its latents"),
    (("--jobs", 0), "--jobs must be at least 1"),
])
def test_bad_rate_choices(tiny_model, image_file, args, fragment):
    assert_one_line_error(run("compress", image_file, *args), fragment)
    assert not image_file.with_suffix(".lic").exists()


def tiny_checkpoint(data, out, steps=1, *options):
    """A one-step run of a very small model: what export and resume need, in about a second."""
    return run("train", "--data", data, "--lmbda", 0.01, "-o", out, "--N", 8, "--M", 16, "--batch-size", 1,
               "--crop", 64, "--steps", steps, *options)


def test_a_model_name_is_never_silently_replaced(tiny_model, dataset, tmp_path, image_file):
    assert_one_line_error(tiny_checkpoint(dataset, tmp_path / "early.ckpt", 1, "--name", "tiny"), "model tiny already exists")
    assert not (tmp_path / "early.ckpt").exists()  # refused before training
    assert_one_line_error(tiny_checkpoint(dataset, tmp_path / "early.ckpt", 1, "--name", DEFAULT_MODEL, "--force"), "shipped model")
    checkpoint = tmp_path / "run.ckpt"
    assert tiny_checkpoint(dataset, checkpoint).exit_code == 0
    assert run("compress", image_file, "--model", "tiny").exit_code == 0
    assert_one_line_error(run("export", checkpoint, "--name", "tiny"), "model tiny already exists")
    assert run("decompress", image_file.with_suffix(".lic"), "-o", tmp_path / "still.png").exit_code == 0
    assert_one_line_error(run("export", checkpoint, "--name", DEFAULT_MODEL, "--force"), "is a shipped model's")
    result = run("export", checkpoint, "--name", "tiny", "--force")
    assert result.exit_code == 0 and "registered model tiny" in result.stdout, result.output


@pytest.mark.parametrize("args, fragment", [
    (("--hyper-attention", "foo"), "unknown --hyper-attention 'foo'"),
    (("--hyper-attention-in", "h_s"), "unknown --hyper-attention-in 'h_s' (choose from both, h_a)"),
    (("--hyper-attention", "sge", "--N", 12), "divisible by groups"),
    (("--batch-size", 0), "--batch-size must be at least 1"),
    (("--steps", 0), "--steps must be at least 1"),
    (("--lmbda", -1), "--lmbda must be positive"),
    (("--lmbda", 0), "--lmbda must be positive"),
])
def test_bad_training_options_fail_before_training(dataset, tmp_path, args, fragment):
    out = tmp_path / "run.ckpt"
    options = {"--lmbda": 0.01, "--N": 8, "--M": 16, "--crop": 64, **dict(zip(args[::2], args[1::2]))}
    assert_one_line_error(run("train", "--data", dataset, "--out", out, *[x for item in options.items() for x in item]), fragment)
    assert not out.exists()


def test_a_resume_names_what_it_ignores_and_refuses_a_finished_run(dataset, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    assert tiny_checkpoint(dataset, checkpoint, 1).exit_code == 0
    assert_one_line_error(tiny_checkpoint(dataset, checkpoint, 1), "is already at step 1")
    result = run("train", "--data", dataset, "--lmbda", 0.02, "--output", checkpoint, "--N", 8, "--M", 16, "--batch-size", 2,
                 "--crop", 64, "--steps", 2)
    assert result.exit_code == 0 and "resuming" in result.stderr, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--lmbda 0.02 (it has 0.01)" in notes[0] and "--batch-size 2 (it has 1)" in notes[0], notes
    assert "--N" not in notes[0] and "--steps" not in notes[0] and "--crop" not in notes[0]


def test_decompress_writes_lossless_formats_only(tiny_model, image_file, tmp_path):
    from PIL import Image

    assert run("compress", image_file, "--model", "tiny").exit_code == 0
    compressed = image_file.with_suffix(".lic")
    for name, fragment in (("x.jpg", "JPEG is not a lossless format"), ("x.webp", "WEBP is not a lossless format"),
                           ("x.gif", "GIF is not a lossless format")):
        assert_one_line_error(run("decompress", compressed, "-o", tmp_path / name), fragment)
        assert not (tmp_path / name).exists()
    assert run("decompress", compressed, "-o", tmp_path / "x.png").exit_code == 0
    reference = Image.open(tmp_path / "x.png").tobytes()
    for name in ("x.tif", "x.bmp", "x.ppm"):
        assert run("decompress", compressed, "-o", tmp_path / name).exit_code == 0
        assert Image.open(tmp_path / name).tobytes() == reference, name


def test_an_output_ending_in_a_slash_is_a_folder(tiny_model, image_file, tmp_path):
    result = run("compress", image_file, "--model", "tiny", "-o", f"{tmp_path / 'coded'}/")
    assert result.exit_code == 0 and (tmp_path / "coded" / "photo.lic").is_file(), result.output
    result = run("decompress", tmp_path / "coded" / "photo.lic", "-o", f"{tmp_path / 'decoded'}/")
    assert result.exit_code == 0 and (tmp_path / "decoded" / "photo.lic.png").is_file(), result.output


def test_a_folder_run_goes_on_past_bad_files(tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    natural_image(40, 30).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"")
    natural_image(40, 30, seed=1).save(folder / "c.png")
    result = run("compress", folder, "--model", "tiny", "-o", tmp_path / "coded")
    assert_one_line_error(result, f"{folder / 'b.png'}: not an image file")
    assert sorted(p.name for p in (tmp_path / "coded").iterdir()) == ["a.lic", "c.lic"]
    assert "a.lic" in result.stdout and "c.lic" in result.stdout
    coded = tmp_path / "coded" / "a.lic"
    data = coded.read_bytes()
    coded.write_bytes(data[:-10] + bytes([data[-10] ^ 4]) + data[-9:])
    result = run("decompress", tmp_path / "coded", "-o", tmp_path / "decoded")
    assert_one_line_error(result, f"{coded}: corrupted file (CRC32 mismatch)")
    assert [p.name for p in (tmp_path / "decoded").iterdir()] == ["c.lic.png"]


def test_folders_mirror_their_subfolders_and_skip_existing_outputs(tiny_model, tmp_path):
    for part in ("a", "b"):
        (tmp_path / "tree" / part).mkdir(parents=True)
        natural_image(40, 30, seed=ord(part)).save(tmp_path / "tree" / part / "x.png")
    result = run("compress", tmp_path / "tree", "--model", "tiny", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.lic")) == ["a/x.lic", "b/x.lic"]
    result = run("decompress", tmp_path / "out", "-o", tmp_path / "decoded")
    assert result.exit_code == 0 and (tmp_path / "decoded" / "a" / "x.lic.png").is_file(), result.output
    kept = (tmp_path / "out" / "b" / "x.lic").read_bytes()
    (tmp_path / "out" / "a" / "x.lic").unlink()
    assert_one_line_error(run("compress", tmp_path / "tree", "--model", "tiny", "-o", tmp_path / "out"), "already exists")
    result = run("compress", tmp_path / "tree", "--model", "tiny", "-o", tmp_path / "out", "--skip-existing")
    assert result.exit_code == 0, result.output
    assert "x.lic  skipped (exists)" in result.stdout and (tmp_path / "out" / "a" / "x.lic").is_file()
    assert (tmp_path / "out" / "b" / "x.lic").read_bytes() == kept


def test_standard_input_and_output(tiny_model, image_file, tmp_path):
    from PIL import Image

    assert run("compress", image_file, "--model", "tiny").exit_code == 0
    reference = image_file.with_suffix(".lic").read_bytes()
    result = runner.invoke(app, ["compress", str(image_file), "--model", "tiny", "-o", "-"])
    assert result.exit_code == 0 and result.stdout_bytes == reference and "photo.png -> standard output" in result.stderr
    result = runner.invoke(app, ["compress", "-", "--model", "tiny", "-o", str(tmp_path / "piped.lic")], input=image_file.read_bytes())
    assert result.exit_code == 0 and (tmp_path / "piped.lic").read_bytes() == reference, result.output
    result = runner.invoke(app, ["decompress", "-", "-o", "-"], input=reference)
    assert result.exit_code == 0 and "standard input -> standard output" in result.stderr, result.output
    assert Image.open(io.BytesIO(result.stdout_bytes)).format == "PNG"
    assert_one_line_error(runner.invoke(app, ["compress", "-", "--model", "tiny"], input=b""),
                          "standard input (-) needs -o: a file, or - for standard output")
    assert_one_line_error(runner.invoke(app, ["compress", "-", str(image_file), "-o", str(tmp_path / "out/")], input=b""),
                          "standard input (-) must be the only input")
    assert_one_line_error(runner.invoke(app, ["compress", "-", "--model", "tiny", "-o", "-"], input=b"junk"),
                          "standard input: not an image file")


def test_version():
    import importlib.metadata

    import codec

    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"codec {codec.__version__}"
    assert codec.__version__ == importlib.metadata.version("lic-codec")


@pytest.mark.parametrize("args, fragment", [
    (("compress", "--bogus"), "no such option: --bogus"),
    (("compress",), "missing argument"),
    (("compress", "photo.png", "-q", "abc"), "invalid value for '-q'"),
    (("train", "--data"), "option '--data' requires an argument"),
    (("frobnicate",), "no such command"),
])
def test_usage_errors_are_one_line(args, fragment):
    assert_one_line_error(run(*args), fragment)


def test_compress_help_names_the_default_effort():
    from codec.models.refine import DEFAULT_EFFORT

    assert f"default {DEFAULT_EFFORT}" in " ".join(run("compress", "--help").stdout.split())


def test_a_decode_never_lands_on_the_image_it_was_made_from(tiny_model, tmp_path):
    """The README's two commands in order, and a folder decoded with --force: the PNGs stay."""
    folder = image_folder(tmp_path / "shots", 40, 30)
    originals = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert run("compress", folder, "--model", "tiny", "-o", folder).exit_code == 0
    result = run("decompress", folder / "0.lic")
    assert result.exit_code == 0 and f"-> {folder / '0.lic.png'}" in result.stdout, result.output
    result = run("decompress", folder, "--force")  # every .lic, beside it
    assert result.exit_code == 0, result.output
    assert run("decompress", folder, "-o", folder, "--force").exit_code == 0
    assert {p.name: p.read_bytes() for p in folder.glob("?.png")} == originals
    assert sorted(p.name for p in folder.glob("*.lic.png")) == ["0.lic.png", "1.lic.png", "2.lic.png"]
    named = run("decompress", folder / "1.lic", "-o", folder / "1.png", "--force")  # named with -o: the user's call
    assert named.exit_code == 0 and (folder / "1.png").read_bytes() != originals["1.png"]


def test_several_inputs_need_a_folder_and_distinct_names(tiny_model, image_file, tmp_path):
    other = tmp_path / "other.png"
    natural_image(30, 20, seed=3).save(other)
    assert run("compress", image_file, other, "--model", "tiny").exit_code == 0
    coded = [image_file.with_suffix(".lic"), other.with_suffix(".lic")]
    assert_one_line_error(run("decompress", *coded, "-o", tmp_path / "one_out.png"),
                          f"{tmp_path / 'one_out.png'}: one output file cannot take 2 inputs ({coded[0]}, {coded[1]})")
    assert not (tmp_path / "one_out.png").exists()
    twin = tmp_path / "sub" / "photo.png"
    twin.parent.mkdir()
    natural_image(30, 20).save(twin)
    assert_one_line_error(run("compress", image_file, twin, "--model", "tiny", "-o", tmp_path / "out", "--force"),
                          f"{image_file} and {twin} would both write {tmp_path / 'out' / 'photo.lic'}")


def test_hidden_files_in_folders_are_left_out(tiny_model, tmp_path):
    folder = image_folder(tmp_path / "in", 40, 30)
    (folder / ".thumb.png").write_bytes(b"not really")  # a desktop's thumbnail, an editor's backup
    (folder / ".cache").mkdir()
    natural_image(40, 30).save(folder / ".cache" / "x.png")
    result = run("compress", folder, "--model", "tiny", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == ["0.lic", "1.lic", "2.lic"]


def test_an_unwritable_folder_names_the_output_not_the_temporary_file(tiny_model, image_file, tmp_path, monkeypatch):
    import tempfile

    def refused(dir, prefix, suffix):
        raise PermissionError(13, "Permission denied", f"{dir}/{prefix}abc{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    target = tmp_path / "locked" / "photo.lic"
    result = run("compress", image_file, "--model", "tiny", "-o", target)
    assert_one_line_error(result, f"{image_file}: {target}: Permission denied")
    assert ".tmp" not in result.stderr


def test_quiet_prints_errors_only(tiny_model, tmp_path):
    folder = image_folder(tmp_path / "in", 40, 30)
    (folder / "3.png").write_bytes(b"")
    image = natural_image(20, 10).convert("RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))
    image.save(folder / "4.png")  # flattened onto white: a note, silenced
    result = run("compress", folder, "--model", "tiny", "-o", tmp_path / "out", "--quiet")
    assert_one_line_error(result, f"{folder / '3.png'}: not an image file")
    assert result.stdout == "" and len(list((tmp_path / "out").iterdir())) == 4
    result = run("decompress", tmp_path / "out", "-o", tmp_path / "back", "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_a_file_larger_than_its_input_gets_a_note(tiny_model, tmp_path):
    """Stripes of two colours: PNG's ground (153 bytes), not a photo codec's (the shipped model's 573)."""
    stripes = tmp_path / "stripes.png"
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, ::2] = 255
    Image.fromarray(pixels).save(stripes)
    result = run("compress", stripes)
    coded = stripes.with_suffix(".lic").stat().st_size
    assert result.exit_code == 0 and coded > stripes.stat().st_size, result.output
    assert (f"note: {stripes}: the coded file ({coded:,} bytes) is larger than the input ({stripes.stat().st_size:,} bytes)"
            in result.stderr)
    result = run("compress", image_folder(tmp_path / "photos", 96, 72), "--model", "tiny", "-o", tmp_path / "out")
    assert result.exit_code == 0 and "larger than the input" not in result.stderr


def test_models_shows_whole_names_and_where_user_models_live(tiny_variable_model, codec_home):
    result = run("models")
    assert result.exit_code == 0 and "gained-mean-scale-hyperprior" in result.stdout, result.stdout
    assert str(codec_home / "models") in " ".join(result.stdout.split())
    assert "$CODEC_HOME/models" in " ".join(run("models", "--help").stdout.split())


@pytest.mark.parametrize("command", ["compress", "decompress", "models", "train", "export", "pack", "eval", "fetch", "compare", "info"])
def test_help_shows_no_type_on_flags(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "<bool>" not in result.stdout and "--help" in result.stdout


def test_a_resume_needs_no_recipe_options(dataset, tmp_path):
    checkpoint = tmp_path / "vr.ckpt"
    result = run("train", "--data", dataset, "-o", checkpoint, "--arch", "gained-mean-scale-hyperprior", "--N", 8, "--M", 16,
                 "--batch-size", 1, "--crop", 64, "--steps", 1)
    assert result.exit_code == 0, result.output
    result = run("train", "--data", dataset, "-o", checkpoint, "--steps", 2)
    assert result.exit_code == 0 and "resuming" in result.stderr and "ignoring" not in result.stderr, result.output
