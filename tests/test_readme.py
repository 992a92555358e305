"""The README stays true: its Python runs, its specs build, its preset table adds up, and every flag it names
for a command is one that command's `--help` lists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

import convscope as cs
from convscope.cli import main, parser
from convscope.models import PRESETS

README = Path(__file__).resolve().parents[1] / "README.md"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
COMMAND = re.compile(r"\bconvscope ([a-z][a-z-]*)(.*)")


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks in `language`."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def prose() -> str:
    """The README without its fenced blocks."""
    return re.sub(r"^```.*?^```", "", README.read_text(), flags=re.S | re.M)


def named_flags() -> list[tuple[str, str, str]]:
    """(command, flag, where) for every `convscope CMD ... --flag` in a bash block or an inline code span, and
    for the `convscope CMD` flags: lists in the prose."""
    found = []
    lines = [line for block in blocks("bash") for line in block.splitlines()]
    lines += re.findall(r"`([^`\n]+)`", prose())
    for line in lines:
        for command, rest in COMMAND.findall(line):
            found += [(command, flag, line) for flag in FLAG.findall(rest)]
    for command, listed in re.findall(
        r"`convscope ([a-z-]+)` flags: (.*?)\(`convscope \1 --help`", prose(), flags=re.S
    ):
        found += [(command, flag, f"the `convscope {command}` flags list") for flag in FLAG.findall(listed)]
    # A paragraph or bullet that names one command: its other flags are that command's (`convscope sweep`
    # searches ... `--filters 8,64`); with none or several named, a flag must exist in some command ("*").
    for chunk in re.split(r"\n\s*\n|\n(?=\* )", prose()):
        spans = re.findall(r"`([^`\n]+)`", chunk)
        named = {command for span in spans for command, _ in COMMAND.findall(span)}
        owner = named.pop() if len(named) == 1 else "*"
        # only spans that start with a flag: `tensorboard --logdir DIR` names another program's flag
        found += [
            (owner, flag, chunk.strip()[:60]) for span in spans if span.startswith("--") for flag in FLAG.findall(span)
        ]
    return found


def test_the_readme_is_parsed_at_all():
    # Guards the parsing below: a README reshuffle that hid every snippet would pass the other tests vacuously.
    assert len(blocks("python")) >= 1 and len(blocks("yaml")) >= 2
    commands = {command for command, _, _ in named_flags()}
    assert {"train", "summary", "inspect", "sweep", "serve", "export", "evaluate"} <= commands
    assert len(named_flags()) > 40


def test_every_flag_the_readme_names_is_in_that_commands_help():
    subcommands = next(a for a in parser()._actions if a.dest == "command").choices
    missing = []
    for command, flag, where in named_flags():
        if command == "*":
            if not any(re.search(rf"(?<![\w-]){flag}(?![\w-])", p.format_help()) for p in subcommands.values()):
                missing.append(f"{flag} (in no command) in {where!r}")
        elif command not in subcommands:
            missing.append(f"convscope {command} (no such command) in {where!r}")
        elif not re.search(rf"(?<![\w-]){flag}(?![\w-])", subcommands[command].format_help()):
            missing.append(f"convscope {command} {flag} in {where!r}")
    assert missing == []


@pytest.mark.slow
def test_the_python_snippet_runs_on_generated_data(tmp_path, monkeypatch, capsys):
    # notMNIST_small.mat's own layout: (28, 28, N) uint8 images, labels 0..9 for the letters A..J.
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 12)
    images = rng.integers(0, 256, size=(28, 28, labels.size), dtype=np.uint8)
    monkeypatch.chdir(tmp_path)
    scipy_io.savemat("notMNIST_small.mat", {"images": images, "labels": labels})
    for snippet in blocks("python"):
        code = re.sub(r"\bepochs=\d+", "epochs=2", snippet)  # the README's 100 epochs would take minutes
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert 'Model: "cnn"' in out  # cs.summary(model) printed the table
    written = [p.parent for p in (tmp_path / "runs").rglob("model.safetensors")]
    assert written, "the snippet saved no run"
    trained = cs.load_run(written[0])
    assert trained.class_names == tuple("ABCDEFGHIJ") and tuple(trained.input_shape) == (28, 28, 1)


def test_every_spec_in_the_readme_builds_and_every_summary_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for text in blocks("yaml"):
        spec = yaml.safe_load(text)
        (tmp_path / f"{spec['name']}.yaml").write_text(text)
    commands = [line.split("#")[0] for block in blocks("bash") for line in block.splitlines()]
    commands = [shlex.split(c)[1:] for c in commands if c.startswith("convscope summary ")]
    # presets and the README's own specs; a Keras file (cnn.keras) is the user's, not the README's
    commands = [argv for argv in commands if argv[1] in PRESETS or (tmp_path / argv[1]).is_file()]
    assert len(commands) >= 3
    for argv in commands:
        assert main(argv) == 0, argv
        spec = argv[1]
        if spec.endswith(".yaml"):
            name = yaml.safe_load((tmp_path / spec).read_text())["name"]
            assert f'Model: "{name}"' in capsys.readouterr().out
    main(["summary", "residual.yaml"])
    assert '"residual" (Functional)' in capsys.readouterr().out  # the README's Functional example is one


def test_the_preset_table_and_the_fast_preset_match_the_models():
    text = README.read_text()
    stated = dict(re.findall(r"^\| `([\w-]+)` \| [^\n]* \| ([\d,]+) \|$", text, flags=re.M))
    stated["fast"] = re.search(r"`fast` \(([\d,]+) params", text).group(1)
    assert set(stated) == set(PRESETS)  # every preset is described, fast included
    for name, params in stated.items():
        total = cs.summary(cs.build(name, input_shape=(28, 28, 1), num_classes=10)).total_params
        assert f"{total:,}" == params, name
