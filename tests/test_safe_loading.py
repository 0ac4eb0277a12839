"""Safe loading: no code runs when labkit reads a file or a report parameter.

Three layers:

- a static scan (``ast``) of every module in ``labkit/`` for loaders that can execute
  code from a file (pickle and friends, ``torch.load`` without ``weights_only=True``,
  unsafe YAML, ``eval``/``exec``, TorchScript), with the scanner itself tested on
  small snippets so a silent scanner cannot pass;
- behavioural tests: a checkpoint whose pickle would call a function is refused by
  labkit's checkpoint loaders, and the function never runs;
- report parameters are data: code given as a string parameter reaches the notebook
  as that string, and text given for a number is rejected before anything runs.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

LABKIT = Path(__file__).resolve().parents[1] / "labkit"

# Modules whose whole purpose is (un)pickling, or running code stored in data.
BANNED_MODULES = {
    "pickle": "store arrays with np.save/np.savez (allow_pickle=False), tables as CSV/Parquet, "
              "settings as JSON",
    "_pickle": "see pickle",
    "cPickle": "see pickle",
    "cloudpickle": "see pickle",
    "dill": "see pickle",
    "joblib": "save weights with torch.save(state_dict) and load them with "
              "torch.load(..., weights_only=True); arrays with np.savez",
    "shelve": "use the project database (SQLAlchemy) or JSON files",
    "marshal": "use JSON",
}

# Reached as an attribute of another module, these names are still pickle.
PICKLE_ATTRIBUTES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill"}

# Calls by their full dotted name (after resolving import aliases) -> the safe alternative.
BANNED_CALLS = {
    "eval": "ast.literal_eval for literals, or parse the value as its declared type",
    "exec": "move the code into a function in labkit/",
    "builtins.eval": "ast.literal_eval",
    "builtins.exec": "move the code into a function in labkit/",
    "torch.jit.load": "torch.load(path, map_location='cpu', weights_only=True) of a state_dict",
    "torch.package.PackageImporter": "torch.load(path, map_location='cpu', weights_only=True)",
    "torch.hub.load": "build the model from labkit's code and load a state_dict with weights_only=True",
    "pandas.read_pickle": "pandas.read_parquet or pandas.read_csv",
    "yaml.unsafe_load": "yaml.safe_load",
    "yaml.unsafe_load_all": "yaml.safe_load_all",
    "yaml.full_load": "yaml.safe_load",
    "yaml.full_load_all": "yaml.safe_load_all",
}
# Method names that only ever mean unpickling, whatever object they are called on.
BANNED_METHODS = {"read_pickle": "pandas.read_parquet or pandas.read_csv"}
SAFE_YAML_LOADERS = {"yaml.SafeLoader", "yaml.CSafeLoader", "yaml.BaseLoader", "yaml.CBaseLoader"}
TORCH_LOADS = {"torch.load", "torch.serialization.load"}
DYNAMIC_IMPORTS = {"__import__", "importlib.import_module"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str
    instead: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}; instead: {self.instead}"


class _Scanner(ast.NodeVisitor):
    """Resolves import aliases (``import numpy as np``, ``from torch import load``) to dotted names."""

    def __init__(self, path: str):
        self.path = path
        self.aliases: dict[str, str] = {}
        self.findings: list[Finding] = []

    def flag(self, node: ast.AST, what: str, instead: str) -> None:
        self.findings.append(Finding(self.path, node.lineno, what, instead))

    def _banned_module(self, node: ast.AST, module: str) -> None:
        banned = [part for part in module.split(".") if part in BANNED_MODULES]
        if banned:
            self.flag(node, f"imports {module}", BANNED_MODULES[banned[0]])

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._banned_module(node, a.name)
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                top = a.name.split(".")[0]
                self.aliases[top] = top
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            hidden = [a.name for a in node.names if a.name in BANNED_MODULES]  # from six.moves import cPickle
            self._banned_module(node, f"{node.module}.{hidden[0]}" if hidden else node.module)
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        self.generic_visit(node)

    def dotted(self, node: ast.AST) -> str | None:
        """``np.load`` -> ``numpy.load``; None for anything but a chain of names."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.dotted(node)
        if name in ("yaml.UnsafeLoader", "yaml.FullLoader", "yaml.Loader"):
            self.flag(node, f"uses {name}", "yaml.safe_load (or Loader=yaml.SafeLoader)")
        elif node.attr in PICKLE_ATTRIBUTES:  # torch.serialization.pickle.loads(...)
            self.flag(node, f"uses {name or node.attr}", BANNED_MODULES[node.attr])
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted(node.func)
        kw = {k.arg: k.value for k in node.keywords if k.arg is not None}
        splat = any(k.arg is None for k in node.keywords)

        if name in BANNED_CALLS:
            self.flag(node, f"calls {name}()", BANNED_CALLS[name])
        elif isinstance(node.func, ast.Attribute) and node.func.attr in BANNED_METHODS:
            self.flag(node, f"calls .{node.func.attr}()", BANNED_METHODS[node.func.attr])
        if name in TORCH_LOADS:
            w = kw.get("weights_only")
            if not (isinstance(w, ast.Constant) and w.value is True):
                got = "with **kwargs" if splat and w is None else \
                    "without weights_only" if w is None else f"with weights_only={ast.unparse(w)}"
                self.flag(node, f"calls {name}() {got}",
                          f"{name}(path, map_location='cpu', weights_only=True)")
        if "allow_pickle" in kw and not (isinstance(kw["allow_pickle"], ast.Constant)
                                         and kw["allow_pickle"].value is False):
            self.flag(node, f"calls {name or ast.unparse(node.func)}() with "
                            f"allow_pickle={ast.unparse(kw['allow_pickle'])}",
                      "store plain arrays and load them with allow_pickle=False (numpy's default)")
        if "pickle_module" in kw:
            self.flag(node, f"passes pickle_module= to {name or ast.unparse(node.func)}()",
                      "leave torch's default pickle module and pass weights_only=True")
        if name in ("yaml.load", "yaml.load_all"):
            loader = kw.get("Loader", node.args[1] if len(node.args) > 1 else None)
            if loader is None or self.dotted(loader) not in SAFE_YAML_LOADERS:
                self.flag(node, f"calls {name}() without a safe Loader",
                          "yaml.safe_load (or Loader=yaml.SafeLoader)")
        if name in DYNAMIC_IMPORTS and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self._banned_module(node, node.args[0].value)
        self.generic_visit(node)


def scan_source(source: str, path: str = "<string>") -> list[Finding]:
    """Every unsafe loader call or import in ``source``."""
    scanner = _Scanner(path)
    scanner.visit(ast.parse(source, filename=path))
    return scanner.findings


def scan_package(root: Path = LABKIT) -> list[Finding]:
    findings = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        findings += scan_source(path.read_text(encoding="utf-8"), rel)
    return findings


# ----------------------------------------------------------------- the scan --
def test_labkit_has_no_unsafe_loaders():
    assert len(list(LABKIT.rglob("*.py"))) > 20  # the scan really reads the package
    findings = scan_package()
    assert not findings, "unsafe loading in labkit/:\n" + "\n".join(map(str, findings))


def test_report_notebooks_have_no_unsafe_loaders():
    """Report notebooks run under papermill on project data: the same rules hold for their cells."""
    notebooks = sorted((LABKIT.parent / "notebooks").glob("*.ipynb"))
    assert notebooks
    findings = []
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]  # nbformat 4 JSON
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                                 for line in source.splitlines())
                findings += scan_source(code, f"notebooks/{path.name}[cell {i}]")
    assert not findings, "unsafe loading in report notebooks:\n" + "\n".join(map(str, findings))


UNSAFE = [
    ("import torch\ntorch.load(p)", "torch.load() without weights_only"),
    ("import torch\ntorch.load(p, map_location='cpu', weights_only=False)", "weights_only=False"),
    ("import torch\ntorch.load(p, weights_only=flag)", "weights_only=flag"),
    ("import torch\ntorch.load(p, **opts)", "with **kwargs"),
    ("from torch import load\nload(p)", "torch.load() without weights_only"),
    ("import torch as T\nT.serialization.load(p)", "torch.serialization.load()"),
    ("import torch\ntorch.load(p, weights_only=True, pickle_module=m)", "pickle_module="),
    ("import numpy as np\nnp.load(p, allow_pickle=True)", "numpy.load() with allow_pickle=True"),
    ("from numpy import load\nload(p, allow_pickle=ok)", "allow_pickle=ok"),
    ("import pickle", "imports pickle"),
    ("import pickle as pk\npk.loads(b)", "imports pickle"),
    ("from pickle import loads", "imports pickle"),
    ("from torch.serialization import pickle", "imports torch.serialization.pickle"),
    ("from six.moves import cPickle as p", "imports six.moves.cPickle"),
    ("import torch\ntorch.serialization.pickle.loads(b)", "uses torch.serialization.pickle"),
    ("import cloudpickle", "imports cloudpickle"),
    ("import dill", "imports dill"),
    ("from joblib import load", "imports joblib"),
    ("import shelve", "imports shelve"),
    ("import marshal", "imports marshal"),
    ("import importlib\nimportlib.import_module('pickle')", "imports pickle"),
    ("__import__('dill')", "imports dill"),
    ("import yaml\nyaml.load(f)", "yaml.load() without a safe Loader"),
    ("import yaml\nyaml.load(f, Loader=yaml.Loader)", "yaml.load() without a safe Loader"),
    ("import yaml\nyaml.load(f, yaml.FullLoader)", "yaml.load() without a safe Loader"),
    ("import yaml\nyaml.unsafe_load(f)", "yaml.unsafe_load()"),
    ("import yaml\nyaml.full_load(f)", "yaml.full_load()"),
    ("eval(text)", "calls eval()"),
    ("exec(code, {})", "calls exec()"),
    ("import builtins\nbuiltins.eval(text)", "builtins.eval()"),
    ("import torch\ntorch.jit.load(p)", "torch.jit.load()"),
    ("import torch\nm = torch.hub.load('repo', 'model')", "torch.hub.load()"),
    ("import pandas as pd\npd.read_pickle(p)", "pandas.read_pickle()"),
    ("df = frame.read_pickle(p)", ".read_pickle()"),
    ("def f():\n    import torch\n    return torch.load(p)\n", "torch.load() without weights_only"),
]


@pytest.mark.parametrize("source,what", UNSAFE, ids=[s.splitlines()[-1] for s, _ in UNSAFE])
def test_the_scanner_flags_unsafe_code(source, what):
    findings = scan_source(source, "labkit/x.py")
    assert findings, f"the scanner missed: {source!r}"
    assert len({f.line for f in findings}) == len(findings) or "yaml" in source  # one finding per problem
    assert any(what in f.what for f in findings), [str(f) for f in findings]
    f = findings[0]
    assert str(f).startswith(f"labkit/x.py:{f.line}: ") and "instead: " in str(f) and f.instead


SAFE = [
    "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
    "import torch\ntorch.save(model.state_dict(), p)",
    "import numpy as np\nnp.load(p)",
    "import numpy as np\nwith np.load(p, allow_pickle=False) as z: pass",
    "import yaml\nyaml.safe_load(f)",
    "import yaml\nyaml.load(f, Loader=yaml.SafeLoader)",
    "import yaml\nfrom yaml import CSafeLoader\nyaml.load(f, Loader=CSafeLoader)",
    "import ast\nast.literal_eval(text)",
    "model.eval()",
    "import re\nre.compile('x').match(s)",
    "import json\njson.loads(s)",
    "self.load(p)",
    "'pickle' in text",
    "frame.to_pickle_safe = 1",
    "import torch\nfrom torch import nn\nnn.Linear(2, 2)",
]


@pytest.mark.parametrize("source", SAFE)
def test_the_scanner_passes_safe_code(source):
    assert scan_source(source) == []


def test_a_violation_in_a_package_names_file_and_line(tmp_path):
    pkg = tmp_path / "labkit"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "ok.py").write_text("import torch\nw = torch.load(p, weights_only=True)\n")
    (pkg / "sub" / "bad.py").write_text('"""Doc."""\nimport torch\n\nw = torch.load(p)\n')
    findings = scan_package(pkg)
    assert [str(f) for f in findings] == [
        "labkit/sub/bad.py:4: calls torch.load() without weights_only; instead: "
        "torch.load(path, map_location='cpu', weights_only=True)"]


# --------------------------------------------- checkpoints that carry code --
def _write_marker(path: str) -> None:
    """Stands in for ``os.system``: what a malicious pickle would call."""
    Path(path).write_text("code from the file ran")


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):  # unpickling calls _write_marker(marker)
        return _write_marker, (self.marker,)


@pytest.fixture(params=["zip", "legacy"])
def booby_trapped(request, tmp_path):
    """A checkpoint whose pickle calls ``_write_marker``: ``(writer, marker)``.

    ``writer(path, tensors)`` saves ``tensors`` plus the payload in torch's zip format
    or its legacy (pre-1.6) format.
    """
    import torch

    marker = tmp_path / "MARKER"

    def write(path: Path, tensors: dict) -> Path:
        torch.save({**tensors, "extra": _Payload(marker)}, path,
                   _use_new_zipfile_serialization=request.param == "zip")
        return path
    return write, marker


def test_the_payload_is_live(booby_trapped, tmp_path):
    """Control: loading the file the unsafe way does run the code, so the refusals below mean something."""
    import torch

    write, marker = booby_trapped
    path = write(tmp_path / "evil.pt", {"w": torch.zeros(2)})
    torch.load(path, map_location="cpu", weights_only=False)  # trusted test payload; never in labkit
    assert marker.read_text() == "code from the file ran"


def test_pool_refuses_a_checkpoint_that_carries_code(booby_trapped, tmp_path):
    from labkit.models._weights import UnsafeCheckpointError
    from labkit.models.pool import ModelPool
    from labkit.models.pool import _torch as T

    write, marker = booby_trapped
    path = write(tmp_path / "evil.pt", T.create("test_resnet", 3).state_dict())
    model = T.create("test_resnet", 3)
    with pytest.raises(UnsafeCheckpointError, match=r"weights of member 'm' .*evil\.pt was refused: .*"
                                                     r"_write_marker, which loading would call"):
        T.load_weights(model, path, what="member 'm'")
    assert not marker.exists()
    # the public path: a pool built from the file loads it when it first predicts
    pool = ModelPool.from_checkpoints([("test_resnet", path)], classes=["a", "b", "c"], image_size=16)
    with pytest.raises(UnsafeCheckpointError, match="torch.save\\(model.state_dict\\(\\), path\\)"):
        pool.predict([np.zeros((16, 16, 3), np.uint8)], num_workers=0, cache=False, progress=False)
    assert not marker.exists()


def test_sam_refuses_a_checkpoint_that_carries_code(booby_trapped, tmp_path, monkeypatch):
    from labkit.models import default_segmenter, load_segmenter
    from labkit.models._weights import UnsafeCheckpointError
    from labkit.models.segmenters.sam_build import TINY_OPTIONS, build_tiny_sam, load_state_dict

    write, marker = booby_trapped
    path = write(tmp_path / "sam_evil.pth", build_tiny_sam().state_dict())
    with pytest.raises(UnsafeCheckpointError, match=r"SAM checkpoint .*sam_evil\.pth was refused"):
        load_state_dict(path)
    with pytest.raises(UnsafeCheckpointError, match="_write_marker"):
        load_segmenter("sam_vit_b", checkpoint=path, cache_dir=tmp_path, build_options=TINY_OPTIONS)
    monkeypatch.setenv("LABKIT_SAM_CHECKPOINT", str(path))
    with pytest.raises(UnsafeCheckpointError):
        default_segmenter(cache_dir=tmp_path)
    assert not marker.exists()


def test_unreadable_weights_are_a_clear_error_without_unsafe_advice(tmp_path):
    from labkit.models._weights import UnsafeCheckpointError, load_torch_weights

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"cannot read SAM checkpoint .*bad\.pt: .*torch\.save") as info:
        load_torch_weights(bad, what="SAM checkpoint")
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert "weights_only=False" not in str(info.value)  # torch's own message suggests it
    with pytest.raises(FileNotFoundError):
        load_torch_weights(tmp_path / "nope.pt", what="SAM checkpoint")


def test_predictions_file_with_pickled_objects_is_refused(tmp_path):
    """``-p predictions FILE.npz`` is a file from outside: an object array in it is never unpickled."""
    from labkit.reports.audit import load_predictions

    marker = tmp_path / "MARKER"
    path = tmp_path / "preds.npz"
    images = np.empty(2, dtype=object)
    images[:] = [_Payload(marker), _Payload(marker)]
    np.savez(path, probs=np.full((1, 2, 2), 0.5), images=images, classes=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="Object arrays cannot be loaded when allow_pickle=False"):
        load_predictions(None, str(path))
    assert not marker.exists()


# ------------------------------------------------- report parameters are data --
ECHO_PARAMETERS = 'project = ""\ntitle = "report"\nnote = ""\nquote = ""\nlimit = 2\n'
ECHO = ('import json, pathlib\n'
        'pathlib.Path("received.json").write_text(json.dumps({\n'
        '    "title": title, "note": note, "quote": quote, "limit": limit,\n'
        '    "types": [type(v).__name__ for v in (title, note, quote, limit)]}))\n')


@pytest.fixture
def echo_report(tmp_path, monkeypatch):
    """A report notebook ``echo`` that writes the parameters it received, and a project to run it on."""
    import nbformat

    from labkit import Project

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(ECHO_PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(ECHO)]
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(nb, str(folder / "echo.ipynb"))
    monkeypatch.setenv("LABKIT_NOTEBOOKS", str(folder))
    Project.create(tmp_path / "proj", classes=["a", "b"]).close()
    return tmp_path / "proj"


def test_code_in_a_string_parameter_stays_a_string(echo_report, tmp_path):
    """Through the CLI and papermill into the kernel: each value arrives as the same text, unrun."""
    from click.testing import CliRunner

    from labkit.cli.report import report

    markers = [tmp_path / f"M{i}" for i in range(3)]
    values = {
        "title": f"__import__('os').system('touch {markers[0]}')",
        # try to close papermill's string literal and run a statement after it
        "note": f'"; __import__("os").system("touch {markers[1]}"); x = "',
        "quote": f'\\"""\n__import__("os").system("touch {markers[2]}")\n#\'\'\' \\',
    }
    args = ["echo", "--project", str(echo_report), "--out", str(tmp_path / "out")]
    for k, v in values.items():
        args += ["-p", k, v]
    r = CliRunner().invoke(report, args + ["-p", "limit", "7"])
    assert r.exit_code == 0, r.output
    received = json.loads((tmp_path / "out" / "received.json").read_text())
    assert received == {**values, "limit": 7, "types": ["str", "str", "str", "int"]}
    assert not any(m.exists() for m in markers)


@pytest.mark.parametrize("value", ["__import__('os').system('touch MARKER')", "3.5", "seven", ""])
def test_text_for_an_int_parameter_is_rejected_before_anything_runs(echo_report, tmp_path, value):
    from click.testing import CliRunner

    from labkit.cli.report import report

    out = tmp_path / "out"
    r = CliRunner().invoke(report, ["echo", "--project", str(echo_report), "--out", str(out),
                                    "-p", "limit", value])
    assert r.exit_code == 1
    assert f"parameter limit={value!r} of report 'echo': invalid literal for int()" in r.output
    assert not out.exists() and not (tmp_path / "MARKER").exists() and not Path("MARKER").exists()
