"""The `codec` command: compress, decompress, models, train, export, eval, fetch."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import os
import sys
import typing
import warnings
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from codec import __version__
from codec.errors import CodecError, ConversionWarning, TargetError
from codec.fileio import IMAGE_SUFFIXES, atomic_write, files_in

try:  # typer vendors click from 0.2x on
    from typer._click.exceptions import UsageError
except ImportError:
    from click.exceptions import UsageError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SUFFIX = ".lic"
DECODED_SUFFIX = ".png"  # appended: photo.lic decodes to photo.lic.png, never onto photo.png, its likely source
STREAM = "-"  # as an input, standard input; as -o, standard output
LOSSLESS_FORMATS = {"PNG", "TIFF", "BMP", "PPM"}  # Pillow's writers that keep the decoded pixels exactly


class OneLineUsageErrors(TyperGroup):
    """Usage errors (an unknown option, a missing or malformed value) as one line and exit status 1,
    as every other failure, rather than click's panel and status 2."""

    def main(self, args=None, prog_name=None, **extra):
        extra["standalone_mode"] = False  # click's errors are raised here, not printed
        try:
            status = super().main(args, prog_name, **extra)
        except UsageError as error:
            if type(error).__name__ == "NoArgsIsHelpError":  # a bare `codec`: the help is printed
                sys.exit(error.exit_code)
            message = error.format_message().rstrip(".")
            hint = f" (see {error.ctx.command_path} --help)" if error.ctx else ""
            err.print(f"codec: error: {message[:1].lower()}{message[1:]}{hint}", markup=False)
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)


# Plain help (click's layout): typer's panels would label every flag <bool>, as if it took a value.
app = typer.Typer(help="A learned image codec.", cls=OneLineUsageErrors, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)


def print_version(value: bool) -> None:
    if value:
        out.print(f"codec {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def options(version: Annotated[bool, typer.Option(
        "--version", callback=print_version, is_eager=True, help="Print the version and exit.")] = False):
    """A learned image codec."""


def message_of(error: Exception) -> str:
    """A user-caused failure (a CodecError or an OSError) in one line."""
    if isinstance(error, OSError):
        name = f"{error.filename}: " if error.filename else ""
        return f"{name}{error.strerror or error}"
    return str(error)


def one_line_errors(command):
    """Turn every user-caused failure into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    return command(*args, **kwargs)
                finally:
                    notes = [str(w.message) for w in caught if issubclass(w.category, ConversionWarning)]
                    for note in dict.fromkeys(notes):  # once each: eval meets an image once per setting
                        err.print(f"note: {note}", markup=False)
        except (CodecError, OSError) as error:
            err.print(f"codec: error: {message_of(error)}", markup=False)
        except KeyboardInterrupt:
            err.print("codec: interrupted")
            raise typer.Exit(130)
        raise typer.Exit(1)

    return wrapper


def named(path: Path, stream: str) -> str:
    """A path as messages name it: "-" is the stream, standard input or output."""
    return stream if str(path) == STREAM else str(path)


def report_failure(source: Path, message: str) -> None:
    """One line for a file that failed, naming it once; the batch goes on to the next."""
    name = named(source, "standard input")
    err.print(f"codec: error: {message if message.startswith(name + ':') else f'{name}: {message}'}", markup=False)


def read_input(source: Path) -> bytes:
    return sys.stdin.buffer.read() if str(source) == STREAM else source.read_bytes()


def write_output(target: Path, write: Callable) -> None:
    """write(file) into the target through a temporary file (see atomic_write), or for "-" onto
    standard output, whole: a pipe cannot seek, as some image writers do."""
    if str(target) != STREAM:
        atomic_write(target, write)
        return
    buffer = io.BytesIO()
    write(buffer)
    sys.stdout.buffer.write(buffer.getvalue())
    sys.stdout.buffer.flush()


def expand_inputs(inputs: list[Path], suffixes: set[str]) -> list[tuple[Path, Path | None]]:
    """Each input file with its path inside the folder it was found in (None for a file given as
    such): folders are replaced by the matching files inside them, recursively, hidden ones left out."""
    files = []
    for path in inputs:
        if path.is_dir():
            found = files_in(path, suffixes)
            if not found:
                raise CodecError(f"{path}: no input files in this folder")
            files.extend((p, p.relative_to(path)) for p in found)
        else:
            files.append((path, None))
    return files


def coded_name(path: Path) -> Path:
    """Where compress writes by default: photo.png -> photo.lic."""
    return path.with_suffix(SUFFIX) if path.suffix != SUFFIX else path.with_name(path.name + SUFFIX)


def decoded_name(path: Path) -> Path:
    """Where decompress writes by default: photo.lic -> photo.lic.png, a name that compress never
    reads to make photo.lic, so that a decode cannot land on the image the file was made from."""
    return path.with_name(path.name + DECODED_SUFFIX)


def output_paths(inputs: list[tuple[Path, Path | None]], output: str | None, renamed: Callable[[Path], Path],
                 force: bool, skip: bool) -> list[Path]:
    """Where each input's result goes: beside it, named by `renamed`, or where -o says: a folder,
    mirroring the input folders' subfolders, for several inputs, a folder input, an existing folder
    or a path ending in "/". Refuses to overwrite without --force (or --skip-existing), before any work."""
    sources = [source for source, _ in inputs]
    if force and skip:
        raise CodecError("give at most one of --force and --skip-existing")
    if STREAM in map(str, sources):
        if len(inputs) > 1:
            raise CodecError("standard input (-) must be the only input")
        if output is None:
            raise CodecError("standard input (-) needs -o: a file, or - for standard output")
    several = len(inputs) > 1 or inputs[0][1] is not None
    if output == STREAM:
        if several:
            raise CodecError("standard output (-o -) takes one input file")
        return [Path(STREAM)]
    named_folder = output is not None and (output.endswith(("/", os.sep)) or Path(output).is_dir())
    if several and output is not None and not named_folder and Path(output).suffix:  # a file's name, not a new folder's
        names = ", ".join(str(source) for source in sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
        raise CodecError(f"{output}: one output file cannot take {len(sources)} inputs ({names}); "
                         "give a folder (an existing one, or a path ending in /)")
    if output is None:
        targets = [renamed(source) for source in sources]
    elif several or named_folder:
        targets = [Path(output) / renamed(inside or Path(source.name)) for source, inside in inputs]
    else:
        targets = [Path(output)]
    first_source = {}
    for source, target in zip(sources, targets):
        if target in first_source:
            raise CodecError(f"{first_source[target]} and {source} would both write {target}; give them distinct names")
        first_source[target] = source
    for source, target in zip(sources, targets):
        if target.resolve() == source.resolve():
            raise CodecError(f"{target}: output would overwrite its own input")
        if target.exists() and not (force or skip):
            raise CodecError(f"{target}: already exists (use --force to overwrite, or --skip-existing)")
    return targets


def without_existing(pairs: list[tuple[Path, Path]], report: Console) -> list[tuple[Path, Path]]:
    """The (input, output) pairs whose output does not exist yet; the others are reported as skipped."""
    todo = []
    for source, target in pairs:
        if str(target) != STREAM and target.exists():
            report.print(f"{named(source, 'standard input')} -> {target}  skipped (exists)", markup=False)
        else:
            todo.append((source, target))
    return todo


def progress_over(items, count: int, label: str, quiet: bool = False):
    """Yield the items, with a progress bar when there are several (and not --quiet)."""
    if count < 2 or quiet:
        yield from items
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        yield from progress.track(items, total=count)


def compress_one(job: tuple[Path, Path, dict, bool]) -> tuple[str, list[str], str | None]:
    """Code one file (in this process or a worker): its report line and its notes, and the message
    of the failure that stopped it, if one did (a batch goes on past a bad file)."""
    source, target, setting, verify = job
    line, notes, problem = "", [], None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        try:
            line, notes = compress_file(source, target, setting, verify)
        except (CodecError, OSError) as error:
            problem = message_of(error)
    return line, [str(w.message) for w in caught if issubclass(w.category, ConversionWarning)] + notes, problem


TARGETS = ("bpp", "size", "psnr")  # compress_to_target's targets: --target-bpp, --size, --target-psnr


def target_label(setting: dict, result) -> str:
    """What a target search did, in a few words: met, met at an end of the range, or missed (--closest)."""
    quality = f"q{result.quality:g}"
    if "psnr" in setting:
        wanted, reached = f"{setting['psnr']:g} dB", f"{result.psnr:.2f} dB"
        what = (f"missed: {quality}, the highest quality, gives {reached}" if not result.met else
                f"{quality}, the lowest quality, already gives {reached}" if result.quality == 0 else f"met at {quality}, {reached}")
    else:
        wanted = f"{setting['size']:,} bytes" if "size" in setting else f"{setting['bpp']:g} bpp"
        what = (f"missed: {quality} is the smallest file" if not result.met else
                f"{quality}, the highest quality, stays within it" if result.quality == 100 else f"met at {quality}")
    return f"  (target {wanted}: {what})"


def compress_file(source: Path, target: Path, setting: dict, verify: bool) -> tuple[str, list[str]]:
    """Code one file into another ("-": standard input or output); returns its report line and its
    notes (metadata left out, a file larger than its input)."""
    from codec.api import compress_to_target, compress as compress_image, decompress
    from codec.bitstream import METADATA_NAMES
    from codec.image import metadata_of, open_image
    from codec.metrics import bits_per_pixel, ms_ssim, ms_ssim_db, psnr

    name = named(source, "standard input")
    encoded = read_input(source) if str(source) == STREAM else None
    image = open_image(io.BytesIO(encoded) if encoded is not None else source)
    input_bytes = len(encoded) if encoded is not None else source.stat().st_size
    notes, carried = [], metadata_of(image)
    if not setting.get("metadata", True) and carried:
        notes.append(f"{name}: {', '.join(METADATA_NAMES[kind] for kind in carried)} left out (--strip)")
    if any(key in setting for key in TARGETS):
        try:
            result = compress_to_target(image, **setting)
        except TargetError as error:
            raise TargetError(f"{error} (--closest writes it)", error.closest)
        data, chosen = result.data, target_label(setting, result)
    else:
        data, chosen = compress_image(image, **setting), ""
    if len(data) > input_bytes:
        notes.append(f"{name}: the coded file ({len(data):,} bytes) is larger than the input ({input_bytes:,} bytes)")
    write_output(target, lambda f: f.write(data))
    line = (f"{name} -> {named(target, 'standard output')}  {image.width}x{image.height}  "
            f"{len(data):,} bytes  {bits_per_pixel(len(data), image):.4f} bpp{chosen}")
    if verify:
        decoded = decompress(data)
        line += f"  PSNR {psnr(image, decoded):.2f} dB"
        score = ms_ssim(image, decoded)
        line += "  MS-SSIM n/a (image too small)" if score is None else f"  MS-SSIM {score:.4f} ({ms_ssim_db(score):.2f} dB)"
    return line, notes


# The options of compress and decompress that output_paths reads.
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]
SkipExisting = Annotated[bool, typer.Option("--skip-existing", help="Leave existing outputs alone (reported as skipped).")]
Quiet = Annotated[bool, typer.Option("--quiet", help="Print errors only: no report lines, notes or progress.")]


def output_option(text: str):
    """-o/--output PATH, with the command's own help text."""
    return typer.Option("-o", "--output", metavar="PATH", help=text)


@app.command()
@one_line_errors
def compress(
    images: Annotated[list[Path], typer.Argument(
        metavar="IMAGE", help="Image files or folders of images (hidden files left out); - reads standard input.", show_default=False)],
    output: Annotated[Optional[str], output_option(
        "Output file, or folder (for several inputs, or ending in /); - writes standard output. Default: beside "
        "each input, photo.png -> photo.lic.")] = None,
    quality: Annotated[Optional[float], typer.Option(
        "-q", "--quality", metavar="Q", help="Quality from 0 to 100, any value (higher: more bits, better); default: the model's.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", metavar="NAME", help="Model name (see `codec models`); default: the shipped one.")] = None,
    target_bpp: Annotated[Optional[float], typer.Option(
        "--target-bpp", metavar="BPP", help="Pick the quality: the most bits within this many per pixel (within 2 %); "
                                            "a budget no quality fits fails.")] = None,
    size: Annotated[Optional[int], typer.Option(
        "--size", metavar="BYTES", help="Pick the quality: the largest file within this many bytes (within 2 %); "
                                        "a budget no quality fits fails.")] = None,
    target_psnr: Annotated[Optional[float], typer.Option(
        "--target-psnr", metavar="DB", help="Pick the quality: the fewest bits reaching this PSNR (dB); a PSNR no quality "
                                            "reaches fails.")] = None,
    closest: Annotated[bool, typer.Option(
        "--closest", help="Where no quality meets the target, write the closest file instead of failing.")] = False,
    effort: Annotated[Optional[int], typer.Option(
        "--effort", "-e", metavar="N", help="Encoder effort 0-9: higher searches each image's latents longer for a smaller file "
                                            "(same decoder); default 0.")] = None,
    strip: Annotated[bool, typer.Option(
        "--strip", help="Leave the input's metadata (ICC profile, EXIF, XMP) out of the file; kept by default.")] = False,
    force: Force = False,
    skip_existing: SkipExisting = False,
    verify: Annotated[bool, typer.Option("--verify", help="Decode the result and report PSNR and MS-SSIM.")] = False,
    quiet: Quiet = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", metavar="N", help="Worker processes for several inputs, one thread each (one process already uses every core).")] = 1,
):
    """Compress images into .lic files; a folder's subfolders are mirrored in the output folder."""
    from codec.api import check_options
    from codec.parallel import in_processes

    chosen = {"quality": quality, "bpp": target_bpp, "size": size, "psnr": target_psnr}
    setting = {key: value for key, value in chosen.items() if value is not None}
    if len(setting) > 1:
        raise CodecError("give at most one of --quality, --target-bpp, --size and --target-psnr")
    if closest:
        if not any(key in setting for key in TARGETS):
            raise CodecError("--closest goes with a target: --target-bpp, --size or --target-psnr")
        setting["closest"] = True
    if model is not None:
        setting["model"] = model
    if effort is not None:
        setting["effort"] = effort
    if strip:
        setting["metadata"] = False
    if jobs < 1:
        raise CodecError(f"--jobs must be at least 1 (got {jobs})")
    check_options(quality, model, target_bpp, target_psnr, effort, size)
    files = expand_inputs(images, IMAGE_SUFFIXES)
    targets = output_paths(files, output, coded_name, force, skip_existing)
    report = Console(quiet=True) if quiet else err if output == STREAM else out  # standard output holds the file alone
    pairs = [(source, target) for (source, _), target in zip(files, targets)]
    work = [(source, target, setting, verify) for source, target in (without_existing(pairs, report) if skip_existing else pairs)]
    jobs = min(jobs, len(work))
    results = in_processes(compress_one, work, jobs) if jobs > 1 else ((job, compress_one(job)) for job in work)
    failures = 0
    for (source, *_), (line, notes, problem) in progress_over(results, len(work), "compressing", quiet):
        for note in [] if quiet else notes:
            err.print(f"note: {note}", markup=False)
        if problem:
            report_failure(source, problem)
            failures += 1
        else:
            report.print(line, markup=False)
    if failures:
        raise typer.Exit(1)


@app.command()
@one_line_errors
def decompress(
    files: Annotated[list[Path], typer.Argument(
        metavar="FILE", help=".lic files or folders of them (hidden files left out); - reads standard input.", show_default=False)],
    output: Annotated[Optional[str], output_option(
        "Output image, or folder (for several inputs, or ending in /); - writes PNG to standard output. Default: "
        "beside each input, photo.lic -> photo.lic.png, never onto the image it was made from.")] = None,
    force: Force = False,
    skip_existing: SkipExisting = False,
    quiet: Quiet = False,
):
    """Decompress .lic files into images: PNG, or TIFF, BMP or PPM/PGM as -o names them (lossless formats
    only), with the metadata the file carries (PNG and TIFF only)."""
    from PIL import Image

    from codec.api import decompress as decompress_bytes
    from codec.image import save_image

    sources = expand_inputs(files, {SUFFIX})
    targets = output_paths(sources, output, decoded_name, force, skip_existing)
    extensions = Image.registered_extensions()
    formats = {target: "PNG" if str(target) == STREAM else extensions.get(target.suffix.lower()) for target in targets}
    for target, kind in formats.items():
        if kind not in LOSSLESS_FORMATS:
            problem = f"unknown image format {target.suffix!r}" if kind is None else f"{kind} is not a lossless format"
            raise CodecError(f"{target}: {problem} (use .png, .tif, .bmp or .ppm)")
    report = Console(quiet=True) if quiet else err if output == STREAM else out  # standard output holds the image alone
    pairs = [(source, target) for (source, _), target in zip(sources, targets)]
    todo = without_existing(pairs, report) if skip_existing else pairs
    failures = 0
    for source, target in progress_over(todo, len(todo), "decompressing", quiet):
        left_out = []
        try:
            image = decompress_bytes(read_input(source))
            write_output(target, lambda f: left_out.extend(save_image(image, f, formats[target])))
        except (CodecError, OSError) as error:
            report_failure(source, message_of(error))
            failures += 1
            continue
        if left_out and not quiet:
            err.print(f"note: {named(target, 'standard output')}: {formats[target]} cannot carry the file's "
                      f"{', '.join(left_out)}: left out (PNG and TIFF can)", markup=False)
        report.print(f"{named(source, 'standard input')} -> {named(target, 'standard output')}  {image.width}x{image.height} {image.mode}", markup=False)
    if failures:
        raise typer.Exit(1)


@app.command()
@one_line_errors
def models():
    """List the installed models and their Kodak scores: the rate points, earlier shipped ones, the user's.

    User models (`codec train --name`, `codec export`) live in $CODEC_HOME/models, by default
    ~/.local/share/codec/models.
    """
    from codec.models.anchors import ANCHOR_RANGE
    from codec.registry import DEFAULT_MODEL, SHIPPED_DIR, list_models, user_dir

    def trade_off(card) -> str:  # a variable-rate model (no λ of its own) trains its anchors' range
        return f"{card.lmbda:g}" if card.lmbda is not None else f"{ANCHOR_RANGE[0]:g}-{ANCHOR_RANGE[1]:g}"

    def where(card) -> str:
        if card.directory != SHIPPED_DIR:
            return "user"
        return "default" if card.name == DEFAULT_MODEL else "earlier"  # kept so that their files still decode

    order = {"default": 0, "earlier": 1, "user": 2}
    table = Table("name", "architecture", "λ", "Kodak bpp", "PSNR", "MS-SSIM", "where", box=None,
                  caption=f"λ: a variable-rate model's range; Kodak: its scores at its default quality; user models: {user_dir()}")
    for card in sorted(list_models(), key=lambda card: order[where(card)]):
        kodak = card.kodak
        attention = card.config.get("hyper_attention", "none")
        table.add_row(
            card.name,
            card.arch + ("" if attention == "none" else f" +{attention} in {card.config.get('hyper_attention_in', 'both')}"),
            trade_off(card),
            f"{kodak['bpp']:.3f}" if kodak else "-",
            f"{kodak['psnr']:.2f}" if kodak else "-",
            f"{kodak['ms_ssim']:.4f}" if kodak else "-",
            where(card),
        )
    print_whole(table)


def print_whole(table: Table) -> None:
    """Print a table at the width its cells need, wider than the terminal if need be: a pipe's 80
    columns must not cut a model's or an architecture's name."""
    from rich.measure import Measurement

    needed = Measurement.get(out, out.options.update_width(1 << 16), table).maximum
    Console(highlight=False, soft_wrap=True, width=max(out.width, needed)).print(table)


def with_recipe_options(command: Callable) -> Callable:
    """Give `command`, which takes the recipe as **recipe, an option for each TrainConfig field, made
    from the field's metadata (codec/training/config.py): its name, type, default and help, before
    the command's own options. A field without a default is a required option, or None if it may be."""
    from codec.training.config import FIELDS, TrainConfig, option_name

    types = typing.get_type_hints(TrainConfig)
    recipe = []
    for name, field in FIELDS.items():
        kind, option = types[name], option_name(field)
        if field.metadata["several"]:
            kind = list[Path]
        default = field.default
        if default is dataclasses.MISSING:
            default = None if type(None) in typing.get_args(kind) else inspect.Parameter.empty
        declaration = f"{option}/--no-{option[2:]}" if kind is bool else option
        recipe.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[kind, typer.Option(declaration, help=field.metadata["help"])]))
    context, *own = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                     for parameter in inspect.signature(command, eval_str=True).parameters.values()
                     if parameter.kind is not inspect.Parameter.VAR_KEYWORD]
    command.__signature__ = inspect.Signature([context, *recipe, *own])
    return command


def recipe_values(options: dict) -> dict:
    """The recipe options' values as TrainConfig's fields: a repeated option's joined by os.pathsep."""
    from codec.training.config import FIELDS

    return {name: os.pathsep.join(map(str, value)) if FIELDS[name].metadata["several"] else value
            for name, value in options.items() if name in FIELDS}


@app.command()
@one_line_errors
@with_recipe_options
def train(
    ctx: typer.Context,
    out_path: Annotated[Path, typer.Option(
        "-o", "--output", "--out", help="Checkpoint file; an existing one is resumed, with its own recipe (--arch, --lmbda... "
                                        "need not be repeated).")],
    val: Annotated[Optional[Path], typer.Option(help="Folder of validation images, scored every --val-every steps.")] = None,
    val_every: Annotated[int, typer.Option(help="Steps between validations.")] = 1000,
    name: Annotated[Optional[str], typer.Option(
        help="Register the result as this model when done (in $CODEC_HOME/models, by default ~/.local/share/codec/models).")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing user model of that --name.")] = False,
    **recipe,
):
    """Train a rate point on the rate-distortion loss; resumable, then registered as a model.

    Under `torchrun --nproc_per_node N` it trains with N processes (one per GPU, or sharing the CPU).
    """
    from codec.export import check_name
    from codec.models.architectures import extends
    from codec.train import train as run_training
    from codec.training.checkpoint import Checkpoint
    from codec.training.config import FIELDS, RESUME_CHANGES, TrainConfig, check_values, option_name
    from codec.training.distributed import is_main_process, training_device
    from codec.training.start import init_source

    typed = [field for field in recipe if ctx.get_parameter_source(field).name == "COMMANDLINE"]
    values = recipe_values(recipe)
    if val_every < 1:
        raise CodecError(f"--val-every must be at least 1 (got {val_every})")
    check_values(values)  # each value alone first: a resume's recipe and --init's model replace some of them
    # A resume: the options not given are its recipe's (which TrainConfig then checks with the given
    # ones), but for those a resume changes, which keep their defaults, and --init, which it does not redo.
    if out_path.is_file():
        saved = Checkpoint.config(Checkpoint.load(out_path))
        values.update({field: getattr(saved, field) for field in values
                       if field not in typed and field not in (*RESUME_CHANGES, "init")})
    init = values["init"]
    if init:  # its model sets the transforms; here, not in TrainConfig, as only the registry or its checkpoint knows them
        source_arch, source_config, _ = init_source(init)
        if not extends(values["arch"], source_arch):
            values["arch"] = source_arch
        if "M" in typed and values["M"] < source_config["M"]:
            raise CodecError(f"--M {values['M']}: --init {init} has a latent of {source_config['M']} channels, which can only widen")
        values.update(N=source_config["N"], M=values["M"] if "M" in typed else source_config["M"],
                      hyper_block=source_config.get("hyper_block", 0))
        if source_config.get("hyper_attention", "none") != "none":  # a model keeps its blocks
            typed_attention = [f"{option_name(FIELDS[field])} {values[field]}" for field in ("hyper_attention", "hyper_attention_in")
                               if field in typed and values[field] != source_config.get(field, "both")]
            if typed_attention:
                raise CodecError(f"--init {init} has hyper-attention {source_config['hyper_attention']} in "
                                 f"{source_config.get('hyper_attention_in', 'both')}: it cannot take " + " ".join(typed_attention))
            values.update(hyper_attention=source_config["hyper_attention"],
                          hyper_attention_in=source_config.get("hyper_attention_in", "both"))
    config = TrainConfig(**values)
    training_device(config.device)  # CUDA where there is none: refused now, not once training has begun
    if name:
        check_name(name, force=force)  # now, not after the training
    with Progress(
        TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
        console=err, disable=not (err.is_terminal and is_main_process()),
    ) as progress:
        task = progress.add_task("train", total=config.steps, status="")

        def report(step: int, metrics: dict | None):
            progress.update(task, completed=step)
            if metrics:
                status = f"loss {metrics['loss']:.3f}  bpp {metrics['bpp']:.3f}  PSNR {metrics['psnr']:.2f}"
                for key in (k for k in metrics if k.startswith("val_bpp")):
                    suffix = key[len("val_bpp"):]
                    status += f"  val{suffix} {metrics[key]:.3f} bpp / {metrics['val_psnr' + suffix]:.2f} dB"
                progress.update(task, status=status)
                if not err.is_terminal:
                    err.print(f"step {step}  {status}")

        run_training(config, out_path, val_dir=str(val) if val else None, val_every=val_every, report=report,
                     notice=lambda message: err.print(message, markup=False), asked=tuple(typed))
    if name and is_main_process():
        export(out_path, name=name, force=force)


@app.command()
@one_line_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `codec train`.")],
    name: Annotated[str, typer.Option(help="Model name (ASCII, as files will carry it).")],
    ship: Annotated[bool, typer.Option(help="Write into the project's shipped models (for developers).")] = False,
    default_quality: Annotated[Optional[float], typer.Option(
        help="A variable-rate model's quality when none is asked for (0-100).")] = None,
    kodak: Annotated[Optional[Path], typer.Option(help="Folder of Kodak images to score the model on.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing model of that name.")] = False,
):
    """Register a checkpoint as a model: update its CDF tables, write weights and manifest into
    $CODEC_HOME/models (by default ~/.local/share/codec/models), where `codec models` lists it."""
    from codec.export import export_checkpoint

    card = export_checkpoint(checkpoint, name, ship=ship, default_quality=default_quality, kodak_dir=kodak, force=force)
    out.print(f"registered model {card.name} in {card.directory}")
    if card.kodak:
        out.print(f"Kodak: {card.kodak['bpp']:.4f} bpp, PSNR {card.kodak['psnr']:.2f} dB, MS-SSIM {card.kodak['ms_ssim']:.4f}")


@app.command()
@one_line_errors
def pack(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `codec train`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The packed checkpoint.")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")] = False,
):
    """Copy a training checkpoint at about half its size, to commit; `codec train --out COPY` resumes it
    (Adam's moments in bfloat16, the moving average restarted: close to, not bit for bit, the run)."""
    import torch

    from codec.training.checkpoint import Checkpoint

    if not checkpoint.is_file():
        raise CodecError(f"{checkpoint}: no such checkpoint")
    if output.exists() and not force:
        raise CodecError(f"{output} exists (use --force to overwrite)")
    packed = Checkpoint.packed(Checkpoint.load(checkpoint))
    atomic_write(output, lambda f: torch.save(packed, f))
    out.print(f"packed {checkpoint} at step {packed['step']} into {output} ({output.stat().st_size / 1e6:.1f} MB)")


@app.command("eval")
@one_line_errors
def evaluate(
    dataset: Annotated[Optional[Path], typer.Argument(
        help="Folder of images (default: where `codec fetch kodak` puts Kodak, ~/.cache/codec/kodak).", show_default=False)] = None,
    models: Annotated[Optional[str], typer.Option(
        help="Comma-separated model names (default: the shipped rate points; none: baselines only).", show_default=False)] = None,
    baselines: Annotated[str, typer.Option(
        help="Comma-separated: jpeg (= jpeg420,jpeg444), jpeg420, jpeg444, webp, avif, jpeg2000, all, or none.")] = "jpeg,webp,avif,jpeg2000",
    out_dir: Annotated[Path, typer.Option(
        "-o", "--output", "--out", help="Output folder: rows.csv, curves.json, bd-rate.md, rd.png, cache/.")] = Path("eval"),
    jobs: Annotated[int, typer.Option(help="Worker processes for the baselines (our models run in the main process).")] = 2,
    effort: Annotated[Optional[int], typer.Option(
        "--effort", "-e", help="Encoder effort of the variable-rate models, 0-9 (default: compress's).")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite the report in an output folder that holds one.")] = False,
):
    """Rate-distortion of our models and Pillow's codecs on a folder of images; resumable, cached in OUT/cache."""
    from codec import report
    from codec.baselines import parse_baselines
    from codec.fetch import default_kodak_dir

    folder = dataset or default_kodak_dir()
    codecs = parse_baselines(baselines)
    cards = report.select_models(models)
    if not force and any((out_dir / name).exists() for name in report.REPORT_FILES):
        raise CodecError(f"{out_dir}: already holds a report (use --force to overwrite it)")
    images, unreadable = report.readable_images(folder)
    for problem in unreadable:  # left out, as compress goes on past a bad file; the exit status says so
        err.print(f"codec: error: {problem}", markup=False)
    if not images:
        raise CodecError(f"{folder}: none of its images could be read")
    tasks = report.plan(folder, cards, codecs, effort=effort, images=images)
    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        bar = progress.add_task("eval", total=len(tasks))
        rows = report.run(tasks, out_dir / "cache", jobs=jobs, advance=lambda: progress.advance(bar))
    curves = report.curves(rows)
    title = f"{folder.resolve().name} ({len({row['image'] for row in rows})} images)"
    if any(card.variable_rate for card in cards):
        title += f", effort {tasks[0].effort if effort is None else effort}"
    written = report.write_outputs(out_dir, rows, curves, title, kodak=report.is_kodak(folder))

    table = Table("codec", "setting", "images", "bpp", "PSNR", "MS-SSIM", "MS-SSIM dB", "MS-SSIM images", "encode s", "decode s",
                  box=None, caption=report.AVERAGES)
    for codec, points in curves.items():
        for point in points:
            table.add_row(
                codec, str(point["setting"]), str(point["images"]),
                f"{point['bpp']:.3f}", f"{point['psnr']:.2f}",
                *(("-", "-") if point["ms_ssim"] is None else (f"{point['ms_ssim']:.4f}", f"{point['ms_ssim_db']:.2f}")),
                str(point["ms_ssim_images"]), f"{point['encode_s']:.3f}", f"{point['decode_s']:.3f}",
            )
        table.add_section()
    print_whole(table)
    for metric, label in report.BD_METRICS.items():
        header, rows_bd = report.bd_table(curves, metric)
        bd = Table(*header, title=f"BD-rate ({label}), row against column", box=None)
        for cells in rows_bd:
            bd.add_row(*cells)
        out.print(bd)
    out.print("wrote " + ", ".join(str(path) for path in written), markup=False)
    if models is None and not cards:
        err.print("note: no shipped models yet, so only the baselines were evaluated")
    if unreadable:
        raise typer.Exit(1)


@app.command()
@one_line_errors
def fetch(
    dataset: Annotated[str, typer.Argument(help="The dataset: kodak.", show_default=False)],
    folder: Annotated[Optional[Path], typer.Argument(help="Where to put it (default: ~/.cache/codec/kodak).", show_default=False)] = None,
):
    """Download a test set (the 24 Kodak images), each file checked against its pinned sha256."""
    from codec.fetch import KODAK_SHA256, default_kodak_dir, fetch_kodak

    if dataset.lower() != "kodak":
        raise CodecError(f"unknown dataset {dataset!r} (known: kodak)")
    folder = folder or default_kodak_dir()
    columns = (TextColumn("fetching"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        bar = progress.add_task("fetch", total=len(KODAK_SHA256))
        downloaded = fetch_kodak(folder, advance=lambda: progress.advance(bar))
    out.print(f"{len(KODAK_SHA256)} Kodak images in {folder} ({downloaded} downloaded, "
              f"{len(KODAK_SHA256) - downloaded} already there)", markup=False)


@app.command()
@one_line_errors
def compare(
    image: Annotated[Path, typer.Argument(help="The image to code.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", metavar="PATH", help="The HTML page (default: beside the image, NAME.compare.html).")] = None,
    png: Annotated[Optional[Path], typer.Option(
        "--png", metavar="PATH", help="Write a PNG sheet with zoomed crops instead of the page (with -o, both).")] = None,
    quality: Annotated[Optional[float], typer.Option("-q", "--quality", help="Our quality, 0-100; default: the model's.")] = None,
    target_bpp: Annotated[Optional[float], typer.Option("--target-bpp", help="Our file: the highest quality within this many bits per pixel.")] = None,
    size: Annotated[Optional[int], typer.Option("--size", metavar="BYTES", help="Our file: the highest quality within this many bytes.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Model name (see `codec models`); default: the shipped one.")] = None,
    baselines: Annotated[str, typer.Option(
        help="Comma-separated: jpeg420, jpeg444, jpeg (both), webp, avif, jpeg2000, all.")] = "jpeg420,webp,avif,jpeg2000",
    force: Force = False,
):
    """Code an image with this codec and with JPEG, WebP, AVIF and JPEG 2000, each at its largest file within
    ours, and show them: an HTML page (swipe, zoom to 8:1, difference maps, a table) that fetches nothing."""
    from codec.baselines import parse_baselines
    from codec.compare import compare as compare_image, html_page, rows, sheet
    from codec.image import open_image

    codecs = parse_baselines(baselines)
    if png is not None and png.suffix.lower() != ".png":
        raise CodecError(f"{png}: --png writes a PNG file: name it .png")
    page = output if output is not None or png is not None else image.with_name(image.stem + ".compare.html")
    targets = [target for target in (page, png) if target is not None]
    if len(targets) == 2 and targets[0].resolve() == targets[1].resolve():
        raise CodecError(f"{png}: -o and --png name the same file")
    for target in targets:
        if target.resolve() == image.resolve():
            raise CodecError(f"{target}: output would overwrite its own input")
        if target.is_dir():
            raise CodecError(f"{target}: is a folder (name the output file)")
        folder = next(parent for parent in target.absolute().parents if parent.exists())
        if not folder.is_dir():
            raise CodecError(f"{target}: {folder} is not a folder")
        if target.exists() and not force:
            raise CodecError(f"{target}: already exists (use --force to overwrite)")
    comparison = compare_image(open_image(image), image.name, quality, target_bpp, size, model, codecs)
    contents = []
    if page is not None:
        contents.append((page, html_page(comparison).encode("utf-8")))
    if png is not None:
        buffer = io.BytesIO()
        sheet(comparison).save(buffer, "PNG")
        contents.append((png, buffer.getvalue()))
    created = []
    try:  # all of them or none that was not there before
        for target, data in contents:
            new = not target.exists()
            atomic_write(target, lambda f: f.write(data))
            if new:
                created.append(target)
    except BaseException:
        for target in created:
            target.unlink(missing_ok=True)
        raise
    cells = rows(comparison)
    width = max(len(f"{row['codec']} {row['setting']}") for row in cells)
    for row in cells:
        out.print(f"{row['codec'] + ' ' + row['setting']:<{width}}  {row['bytes']:>7} bytes  {row['bpp']} bpp  PSNR {row['psnr']} dB  "
                  f"{row['ms_ssim_line']}  encode {row['encode']} ms  decode {row['decode']} ms"
                  + (f"  ({row['note']})" if row["note"] else ""), markup=False)
    out.print("wrote " + ", ".join(str(target) for target, _ in contents), markup=False)


@app.command()
@one_line_errors
def info(
    files: Annotated[list[Path], typer.Argument(help=".lic files.", show_default=False)],
):
    """Describe .lic files without decoding them: model, quality, dimensions, streams and their sizes, metadata."""
    from codec.info import describe

    failures = 0
    for number, path in enumerate(files):
        try:
            lines = describe(path.read_bytes())
        except (CodecError, OSError) as error:
            report_failure(path, message_of(error))
            failures += 1
            continue
        out.print(("\n" if number else "") + str(path), markup=False)
        for field, value in lines:
            out.print(f"  {field:<12}{value}", markup=False)
    if failures:
        raise typer.Exit(1)


def main():
    from codec.allocator import retain_freed_memory

    retain_freed_memory()  # coding runs faster on these machines (see codec/allocator.py)
    app()
