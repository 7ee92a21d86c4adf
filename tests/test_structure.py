"""The layers of the tree, from the imports of its files (an AST pass, nothing is imported):
errors and file format -> models/ -> registry, image, metrics -> api, train, eval -> cli."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
# Where each installed package's files live in the repository (pyproject.toml's package-dir).
FOLDERS = {"codec.models": "models", "codec.cli": "cli", "codec.data": "data", "codec": "codec"}


def imported_modules(path: Path) -> set[str]:
    """The absolute names of the modules a file imports, anywhere in it (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from codec import api` imports codec.api: each name may be a module.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def folder_of(module: str) -> str | None:
    """The repository folder a module of ours lives in, None for another package's."""
    for package, folder in FOLDERS.items():  # the longest prefixes first
        if module == package or module.startswith(package + "."):
            return folder
    return None


def python_files(*folders: str) -> list[Path]:
    """The files of the folders and their subpackages (codec/training/)."""
    return [path for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]


def top_folder(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


def test_models_import_nothing_of_codec_but_the_models():
    upward = {(path.name, module) for path in python_files("models") for module in imported_modules(path)
              if folder_of(module) not in (None, "models")}
    assert upward == set()


def test_no_import_cycle_between_folders():
    edges = {(top_folder(path), folder) for path in python_files("codec", "models", "cli")
             for folder in map(folder_of, imported_modules(path)) if folder not in (None, top_folder(path))}

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(b == goal or (b not in seen and reaches(b, goal, seen | {b})) for a, b in edges if a == start)

    assert [edge for edge in edges if reaches(edge[1], edge[0])] == []
    assert ("codec", "models") in edges and ("cli", "codec") in edges  # the pass sees the imports it should


def test_tests_import_neither_the_benchmarks_nor_each_other():
    """Shared helpers live in tests/helpers.py; benchmarks run as scripts (tests/test_benchmarks.py)."""
    benchmarks = {"benchmarks"} | {path.stem for path in (ROOT / "benchmarks").glob("*.py")}
    found = {(path.name, module) for path in python_files("tests") for module in imported_modules(path)
             if module.split(".")[0] in benchmarks or (module.startswith("tests.") and not module.startswith("tests.helpers"))}
    assert found == set()


def test_help_models_and_info_import_neither_torch_nor_compressai(tiny_model, tmp_path):
    """What `codec --help`, `codec models` and `codec info` import, in a fresh process (how long they
    take is benchmarks/startup.py's business, not a test's)."""
    import subprocess
    import sys

    import codec
    from tests.helpers import natural_image

    coded = tmp_path / "image.lic"
    coded.write_bytes(codec.compress(natural_image(32, 32), model="tiny"))
    for arguments in (["--help"], ["models"], ["info", str(coded)]):
        script = ("import sys\nfrom codec.cli.main import main\nsys.argv = ['codec', *sys.argv[1:]]\n"
                  "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code\n"
                  "print([name for name in ('torch', 'compressai') if name in sys.modules])")
        result = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "[]", arguments


def imported_on_load(path: Path) -> set[str]:
    """The absolute names of the modules a file imports as it loads: those in its functions wait for a call."""
    names, nodes = set(), [ast.parse(path.read_text(), str(path))]
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
        nodes.extend(ast.iter_child_nodes(node))
    return names


def source_file(module: str) -> Path | None:
    """The file of one of our modules, None for another package's or for a name that is no module."""
    folder = folder_of(module)
    if folder is None:
        return None
    package = next(name for name in FOLDERS if module == name or module.startswith(name + "."))
    relative = Path(folder, *module[len(package):].strip(".").split(".")) if module != package else Path(folder)
    for candidate in (relative.with_suffix(".py") if module != package else None, relative / "__init__.py"):
        if candidate is not None and (ROOT / candidate).is_file():
            return ROOT / candidate
    return None


def test_the_baseline_workers_load_no_model_code():
    """`codec eval` measures the Pillow baselines in worker processes that load codec.evaluate and
    codec.parallel: without CompressAI and the models, each starts in the time of torch's import."""
    loaded, todo = set(), ["codec", "codec.evaluate", "codec.parallel"]
    while todo:
        module = todo.pop()
        if module in loaded:
            continue
        loaded.add(module)
        path = source_file(module)
        if path is not None:
            todo.extend(imported_on_load(path))
    assert "codec.baselines" in loaded and "torch" in loaded  # the walk follows what it should
    assert sorted(name for name in loaded if name.split(".")[0] == "compressai" or name.startswith(("codec.models", "codec.api"))) == []


def test_the_parts_of_training_import_neither_the_loop_nor_what_uses_it():
    """codec/training/ sits below codec/train.py, which drives it, and below export, eval and the API."""
    above = ("codec.train", "codec.export", "codec.evaluate", "codec.api", "codec.cli")
    found = {(path.name, module) for path in python_files("codec/training") for module in imported_modules(path)
             if module in above or module.startswith(tuple(f"{name}." for name in above))}
    assert found == set()
