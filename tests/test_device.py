"""Where gradient search runs: the device setting, its resolver and what runs on it (CPU only)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from ntpt_ray.cli import app
from ntpt_ray.cli.sweep import with_device
from ntpt_ray.library import NeuralLibrary
from ntpt_ray.problems import problem
from ntpt_ray.sweep import SpecError, parse_spec
from ntpt_ray.train.device import actor_options, cluster_device, resolve_device
from ntpt_ray.train.restarts import RestartBatch, TrainConfig

MINIMAL = {"name": "t", "problem": {"task": "add2x2:top"}}
TINY = TrainConfig(steps=3, val_every=3, val_size=8, test_size=8, beam=8)


def test_the_resolver_picks_cuda_only_where_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^device: 'cuda' but this process sees no CUDA device"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda")


def test_the_resolver_names_a_bad_device():
    with pytest.raises(ValueError, match=r"^device: expected auto, cpu or cuda, got 'tpu'$"):
        resolve_device("tpu")


def test_the_spec_field_is_parsed_and_checked_and_not_part_of_the_sweep_id():
    spec = parse_spec(MINIMAL)
    assert spec.train.device == "auto"
    on_cuda = parse_spec({**MINIMAL, "train": {"device": "cuda"}})  # checked where it runs
    assert on_cuda.train.device == "cuda" and on_cuda.sweep_id == spec.sweep_id
    with pytest.raises(SpecError, match=r"^s.toml: \[train\] device: Input should be 'auto', 'cpu' or "
                                        r"'cuda' \(got 'tpu'\)$"):
        parse_spec({**MINIMAL, "train": {"device": "tpu"}}, source="s.toml")
    assert with_device(spec, "cpu").train.device == "cpu"
    with pytest.raises(SpecError, match=r"^--device tpu: \[train\] device"):
        with_device(spec, "tpu")


def test_ntpt_train_rejects_a_bad_device_before_training():
    result = CliRunner().invoke(app, ["train", "math", "--device", "tpu"])
    assert result.exit_code != 0
    assert "device: expected auto, cpu or cuda, got 'tpu'" in result.output


def test_an_explicit_cpu_batch_matches_the_default():
    prob = problem("math")
    default, on_cpu = RestartBatch(prob, [1, 2], TINY), RestartBatch(prob, [1, 2], TINY, device="cpu")
    assert on_cpu.device == torch.device("cpu")
    for _ in range(2):
        assert default.step() == on_cpu.step()
    for name, logit in default.params.logits.items():
        assert torch.equal(logit, on_cpu.params.logits[name])
    assert (default.validate() == on_cpu.validate()).all()
    examples, mask = on_cpu._batches()[0]
    tensors = [mask, *examples.inputs.values(), *examples.outputs.values()]
    assert {t.device for t in tensors} == {on_cpu.device}
    assert on_cpu.optimizer.steps.device == on_cpu.device


def test_library_snapshots_are_cpu_copies():
    nets = problem("math", perceptual=True).compile().nets
    library = NeuralLibrary(nets, [3, 4])
    snapshot = library.snapshot(1)
    for name, state in snapshot.items():
        for key, tensor in state.items():
            assert tensor.device.type == "cpu" and not tensor.requires_grad
            tensor.zero_()  # a copy: the library keeps its weights
        assert library.nets[name].weights[0][1].abs().sum() > 0


def test_sweep_actors_ask_for_a_gpu_only_on_cuda():
    assert actor_options("cpu") == {"num_cpus": 1, "max_restarts": 0}
    assert actor_options("cuda") == {"num_cpus": 1, "max_restarts": 0, "num_gpus": 1}
    assert cluster_device("auto", 0) == cluster_device("cpu", 4) == "cpu"
    assert cluster_device("auto", 2) == cluster_device("cuda", 1) == "cuda"
    with pytest.raises(ValueError, match=r"^device: 'cuda' but the Ray cluster has no GPU"):
        cluster_device("cuda", 0)
