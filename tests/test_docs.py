"""Every example of docs/language.md compiles, and every error example fails with its message.

A block fenced as ```python model compiles (``NAME=VALUE`` words after it give hyper-parameters,
``task=TASK`` compiles it as that built-in task's model); a ```python error block must raise the
NTPTError printed in the ```text block right after it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ntpt_ray.lang.errors import NTPTError
from ntpt_ray.lang.model import Model
from ntpt_ray.problems import problem

DOC = Path(__file__).resolve().parents[1] / "docs" / "language.md"
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[int, str, list[str], str]]:
    """``(line, language, words after it, body)`` of each fenced block, in order."""
    text = DOC.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m[1], m[2].split(), m[3]) for m in FENCE.finditer(text)]


def marked(kind: str) -> list:
    found = [(line, words[1:], body) for line, lang, words, body in blocks()
             if lang == "python" and words[:1] == [kind]]
    return [pytest.param(words, body, id=f"line {line}") for line, words, body in found]


def errors() -> list:
    found = blocks()
    return [pytest.param(body, found[k + 1][3].strip(), id=f"line {line}")
            for k, (line, lang, words, body) in enumerate(found) if lang == "python" and words[:1] == ["error"]]


def test_every_python_block_is_checked():
    python = [(line, words) for line, lang, words, _ in blocks() if lang == "python"]
    assert len(python) >= 15
    assert all(words[:1] in (["model"], ["error"]) for _, words in python), python


@pytest.mark.parametrize("words, source", marked("model"))
def test_the_example_compiles(words, source, tmp_path):
    options = dict(word.split("=", 1) for word in words)
    task = options.pop("task", None)
    hypers = {name: int(value) for name, value in options.items()}
    if task is None:
        Model(source, filename="model.py").compile(**hypers)
    else:  # as that task compiles and checks a user's model
        path = tmp_path / "model.py"
        path.write_text(source)
        found = problem(task, model=str(path), hypers=hypers)
        found.compile()
        found.check()


@pytest.mark.parametrize("source, message", errors())
def test_the_error_example_fails_with_its_message(source, message):
    with pytest.raises(NTPTError) as info:
        Model(source, filename="model.py")
    assert str(info.value) == message
