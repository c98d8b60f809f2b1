"""A user's task from files, in TerpreT's data format (plus images for perceptual inputs).

* ``DATA.json``: a list of batches ``{"batch_name", "hypers": SET, "instances": [{name: value}]}``;
  a value is an integer or a nested list for an array Input/Output, and ``null`` leaves an
  Output value unobserved (masked out of the loss and of every check).
* ``HYPERS.json``: ``{SET: {Hyper name: value}}``, the values of the model's ``Hyper()``\\ s for
  each batch.
* ``DATA.npz`` (beside the JSON, only for ``Tensor`` inputs): ``"<batch>.<input>"`` holds the
  batch's images ``[instances, *array_shape, *tensor_shape]`` (uint8 0..255 or float 0..1), and
  ``"<batch>.<input>.symbols"`` the symbol ids they show ``[instances, *array_shape]`` (digits
  0-9, operators 10-13), which exact-perception verification needs.

Batch ``train`` (or the batches named by ``train_batches``) is trained on and screens decoded
programs; every other batch (or those named by ``check_batches``) is held out, and a program is
verified only if it is right on every observed value of each of them. With nothing held out, a
program that fits the training batches counts as verified (:attr:`FileTask.held_out` is False).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..lang.errors import NTPTError
from ..lang.ir import slot_name
from ..lang.model import CompiledModel, Model
from .base import Task
from .examples import UNOBSERVED, Examples


class TaskDataError(ValueError):
    """Examples that do not fit their model: the message names the file, batch, instance and name."""


@dataclass(frozen=True)
class TaskFiles:
    """The bytes of a task's files, so that the task travels to Ray actors without them."""

    data_name: str
    data: bytes
    hypers_name: str | None = None
    hypers: bytes | None = None
    tensors: bytes | None = None  # the .npz, when the model has Tensor inputs

    @classmethod
    def read(cls, data: str | Path, hypers: str | Path | None = None) -> TaskFiles:
        data = Path(data)
        npz = data.with_suffix(".npz")
        try:
            return cls(str(data), data.read_bytes(), None if hypers is None else str(hypers),
                       None if hypers is None else Path(hypers).read_bytes(),
                       npz.read_bytes() if npz.exists() else None)
        except OSError as exc:
            raise TaskDataError(f"{exc.filename}: cannot read: {exc.strerror}") from None

    @property
    def fingerprint(self) -> str:
        """sha256 of the contents (not the names): another file, another fingerprint."""
        digest = hashlib.sha256()
        for part in (self.data, self.hypers or b"", self.tensors or b""):
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ExampleSet:
    name: str
    hypers: dict[str, int]
    examples: Examples


@dataclass(frozen=True, eq=False)
class FileTask(Task):
    """A task whose examples are fixed, read from a TerpreT data file (see the module docstring)."""

    name: str
    sets: tuple[ExampleSet, ...]
    train_batches: tuple[str, ...]
    check_batches: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    perceptual_inputs: tuple[str, ...]
    fingerprint: str

    @classmethod
    def load(cls, files: TaskFiles, model: Model, *, overrides: Mapping[str, int] | None = None,
             train_batches: Sequence[str] | None = None, check_batches: Sequence[str] | None = None,
             name: str | None = None) -> FileTask:
        """Read and check the examples against ``model`` (compiled with each batch's hypers)."""
        batches = _parse_json(files.data, files.data_name, "a list of batches")
        hyper_sets = (_parse_json(files.hypers, files.hypers_name, "an object of hyper sets")
                      if files.hypers is not None else {})
        tensors = np.load(io.BytesIO(files.tensors)) if files.tensors is not None else None
        if not isinstance(batches, list) or not batches:
            raise TaskDataError(f"{files.data_name}: expected a non-empty list of batches "
                                "[{batch_name, hypers, instances}]")
        reader = _Reader(files, model, dict(overrides or {}), hyper_sets, tensors)
        sets = tuple(reader.batch(k, b) for k, b in enumerate(batches))
        names = [s.name for s in sets]
        train = tuple(train_batches or (["train"] if "train" in names else names[:1]))
        check = tuple(check_batches if check_batches is not None else
                      [n for n in names if n not in train])
        for option, chosen in (("train batches", train), ("check batches", check)):
            unknown = [n for n in chosen if n not in names]
            if unknown:
                raise TaskDataError(f"{files.data_name}: {option}: no batch {unknown[0]!r} "
                                    f"(batches: {', '.join(names)})")
        never = [o for o in reader.outputs if o not in reader.mentioned]
        if never:
            raise TaskDataError(f"{files.data_name}: Output '{never[0]}' of the model is never "
                                "mentioned by any instance: nothing to learn it from")
        shapes = {json.dumps(reader.compiled(s.hypers).param_shapes(), sort_keys=True) for s in sets}
        if len(shapes) > 1:
            raise TaskDataError(f"{files.data_name}: the batches' hypers give the model Params of "
                                "different shapes; one program must run on every batch")
        return cls(name or Path(files.data_name).stem.removesuffix("_data"), sets, train, check,
                   reader.inputs, reader.outputs, reader.perceptual, files.fingerprint)

    # ---------------------------------------------------------------- Task

    def _sets(self, names: Sequence[str]) -> list[ExampleSet]:
        return [s for s in self.sets if s.name in names]

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.outputs

    @property
    def train_hypers(self) -> dict[str, int]:
        return self._sets(self.train_batches)[0].hypers

    def relevance_hypers(self) -> list[dict[str, int]]:
        return [s.hypers for s in self._sets((*self.train_batches, *self.check_batches))]

    @property
    def held_out(self) -> bool:
        return bool(self.check_batches)

    @property
    def perceptual_only(self) -> bool:
        return bool(self.perceptual_inputs)

    def _shown(self, examples: Examples, perceptual: bool) -> Examples:
        if perceptual or not self.perceptual_inputs:
            return examples
        return Examples(examples.symbolic(), examples.outputs, {}, examples.hypers, examples.name)

    def train_examples(self, n, rng, *, perceptual, data_dir=None) -> Examples:
        chosen = self._sets(self.train_batches)
        s = chosen[int(rng.integers(len(chosen)))] if len(chosen) > 1 else chosen[0]
        size = len(s.examples)
        rows = torch.from_numpy(np.sort(rng.choice(size, n, replace=False))) if n < size else slice(None)
        return self._shown(s.examples.rows(rows), perceptual)

    def validation_sets(self, n, *, seed, perceptual, data_dir=None) -> list[Examples]:
        return [self._shown(s.examples, perceptual) for s in self._sets(self.train_batches)]

    def check_sets(self, n, *, seed, perceptual, data_dir=None) -> list[Examples]:
        return [self._shown(s.examples, perceptual) for s in self._sets(self.check_batches)]

    def describe(self) -> str:
        counts = ", ".join(f"{s.name} {len(s.examples)}" for s in self.sets)
        return (f"{self.name}: batches {counts}; trains on {', '.join(self.train_batches)}, checks "
                f"{', '.join(self.check_batches) or 'nothing (no batch held out)'}")


def _parse_json(raw: bytes, name: str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaskDataError(f"{name}: not valid JSON ({what}): {exc}") from None


class _Reader:
    """Turns each batch of a data file into tensors, checking it against the model."""

    def __init__(self, files: TaskFiles, model: Model, overrides: dict[str, int],
                 hyper_sets: dict, tensors):
        self.files, self.model, self.overrides = files, model, overrides
        self.hyper_sets, self.tensors = hyper_sets, tensors
        self.inputs: tuple[str, ...] = ()
        self.outputs: tuple[str, ...] = ()
        self.perceptual: tuple[str, ...] = ()
        self.mentioned: set[str] = set()
        self.where = files.data_name

    def compiled(self, hypers: dict[str, int]) -> CompiledModel:
        try:
            return self.model.compile(**{**hypers, **self.overrides})
        except NTPTError as exc:
            raise TaskDataError(f"{self.where}: {exc}") from None

    def batch(self, k: int, batch: Any) -> ExampleSet:
        if not isinstance(batch, dict) or not isinstance(batch.get("instances"), list):
            raise TaskDataError(f"{self.where}: batch {k}: expected {{batch_name, hypers, instances: [...]}}")
        name = str(batch.get("batch_name", f"batch{k}"))
        where = f"{self.where}: batch '{name}'"
        set_name = batch.get("hypers")
        if set_name is None:
            hypers = {}
        elif set_name not in self.hyper_sets:
            known = ", ".join(self.hyper_sets) or "none: no hypers file given (--hypers)"
            raise TaskDataError(f"{where}: hypers set {set_name!r} is not in the hypers file (sets: {known})")
        else:
            hypers = dict(self.hyper_sets[set_name])
        compiled = self.compiled(hypers)
        self.inputs = tuple(compiled.inputs)
        self.outputs = tuple(compiled.outputs)
        self.perceptual = tuple(n for n, d in compiled.inputs.items() if d.is_tensor)
        instances = batch["instances"]
        if not instances:
            raise TaskDataError(f"{where}: has no instances")
        inputs, outputs = {}, {}
        for k_i, inst in enumerate(instances):
            if not isinstance(inst, dict):
                raise TaskDataError(f"{where}: instance {k_i}: expected an object {{name: value}}")
            known = set(compiled.inputs) | set(compiled.outputs)
            unknown = sorted(set(inst) - known)
            if unknown:
                raise TaskDataError(f"{where}: instance {k_i}: '{unknown[0]}' is neither an Input nor an "
                                    f"Output of the model (it has {', '.join(sorted(known))})")
        for name_i, decl in compiled.inputs.items():
            if decl.is_tensor:
                continue
            inputs[name_i] = torch.from_numpy(np.stack([
                instance_value(inst.get(name_i), decl, f"{where}: instance {k_i}: Input '{name_i}'", False)
                for k_i, inst in enumerate(instances)]))
        for name_o, decl in compiled.outputs.items():
            rows = np.stack([instance_value(inst.get(name_o), decl, f"{where}: instance {k_i}: Output "
                                        f"'{name_o}'", True) for k_i, inst in enumerate(instances)])
            if any(name_o in inst for inst in instances):
                self.mentioned.add(name_o)
            for slot in decl.slots():
                column = np.ascontiguousarray(rows[(slice(None), *slot[1])])
                outputs[slot_name(slot)] = torch.from_numpy(column)
        images, symbols = self.images(name, compiled, len(instances), where)
        return ExampleSet(name, hypers, Examples({**inputs, **images}, outputs, symbols, hypers, name))

    def images(self, batch: str, compiled: CompiledModel, count: int, where: str):
        images, symbols = {}, {}
        for name, decl in compiled.inputs.items():
            if not decl.is_tensor:
                continue
            key = f"{batch}.{name}"
            npz = Path(self.files.data_name).with_suffix(".npz").name
            if self.tensors is None or key not in self.tensors:
                raise TaskDataError(f"{where}: Tensor input '{name}' needs array '{key}' in {npz}")
            array = self.tensors[key]
            expected = (count, *decl.shape, *decl.tensor_shape)
            if array.shape != expected:
                raise TaskDataError(f"{npz}: '{key}' has shape {array.shape}, expected {expected}")
            scale = 255.0 if array.dtype == np.uint8 else 1.0
            images[name] = torch.from_numpy(array.astype(np.float32) / scale)
            if f"{key}.symbols" not in self.tensors:
                raise TaskDataError(f"{npz}: '{key}.symbols' (the symbol ids the images show) is "
                                    "missing: verification checks programs with exact perception")
            symbols[name] = torch.from_numpy(self.tensors[f"{key}.symbols"].astype(np.int64))
        return images, symbols


def instance_value(raw: Any, decl, where: str, nullable: bool) -> np.ndarray:
    """One instance's value of an Input or Output as an int64 array of the declared shape
    (``UNOBSERVED`` for ``null``, allowed only where ``nullable``)."""
    if raw is None and not nullable:
        raise TaskDataError(f"{where}: missing (every Input needs a value)")
    if raw is None:
        return np.full(decl.shape, UNOBSERVED, dtype=np.int64)
    try:
        array = np.array(raw, dtype=object)
    except ValueError:
        raise TaskDataError(f"{where}: a ragged list; expected shape {decl.shape}") from None
    if array.shape != decl.shape:
        raise TaskDataError(f"{where}: has shape {array.shape}, the model declares {decl.shape}")
    out = np.full(decl.shape, UNOBSERVED, dtype=np.int64)
    for index in np.ndindex(*decl.shape):
        v = array[index]
        if v is None and nullable:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < decl.size:
            at = f"[{', '.join(map(str, index))}]" if index else ""
            raise TaskDataError(f"{where}{at}: value {v!r} is outside its range 0..{decl.size - 1}")
        out[index] = v
    return out
