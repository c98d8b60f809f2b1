"""The fast relaxed path computes what the reference does: the same loss and gradients on every
shipped model (and on TerpreT's, through the tasks layer), and arm liveness decided statically."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import numpy as np
import torch

from ntpt_ray.lang.model import Model
from ntpt_ray.lang.relaxed import PATHS, plan, relaxed_class, run_relaxed
from ntpt_ray.problems import file_problem, problem
from ntpt_ray.train.config import TrainConfig
from ntpt_ray.train.restarts import RestartBatch
from ntpt_ray.train.verify import Verifier

TERPRET = Path(__file__).resolve().parents[2] / "shared" / "terpret"
needs_terpret = pytest.mark.skipif(not TERPRET.is_dir(), reason=f"TerpreT's models are not at {TERPRET}")
CONFIG = TrainConfig(steps=4, batch_size=4, val_size=4, test_size=4)


def _steps(prob, steps: int = 2) -> dict[str, tuple[list[float], dict[str, torch.Tensor]]]:
    """Per path: the losses of ``steps`` steps of 3 restarts and the gradients of the last."""
    out = {}
    verifier = Verifier(prob, val_size=1, test_size=1)  # unused: built once, not per path
    for path in PATHS:
        batch = RestartBatch(prob, [0, 1, 2], CONFIG, path=path, verifier=verifier)
        losses = [batch.step() for _ in range(steps)]
        grads = {f"param {n}": p.grad.clone() for n, p in batch.params.logits.items()}
        if prob.perceptual:
            grads.update({f"net {n}": p.grad.clone() for n, p in batch.library.nets.named_parameters()
                          if p.grad is not None})
        out[path] = (losses, grads)
    return out


def _assert_same(prob) -> None:
    ran = _steps(prob)
    (ref_losses, ref_grads), (fast_losses, fast_grads) = ran["reference"], ran["fast"]
    assert fast_losses == pytest.approx(ref_losses, rel=1e-5, abs=1e-6)
    assert set(fast_grads) == set(ref_grads) and ref_grads
    for name, grad in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)  # float32 rounding
    assert any(bool(g.abs().sum() > 0) for g in ref_grads.values())  # a real gradient was compared


@pytest.mark.parametrize("task", ["math", "add2x2:top", "apply2x2:left"])
def test_fast_and_reference_paths_agree_on_the_shipped_models(task):
    _assert_same(problem(task))


def test_fast_and_reference_paths_agree_with_learned_nets():
    _assert_same(problem("add2x2:top", perceptual=True))


@needs_terpret
@pytest.mark.parametrize("model, data", [("test1", "test1"), ("turing", "turing_invert"),
                                         ("circuit", "circuit_swap"), ("basic_block", "basic_block_access")])
def test_fast_and_reference_paths_agree_on_terpret_models(model, data):
    prob = file_problem(TERPRET / "models" / f"{model}.py", TERPRET / "data" / f"{data}_data.json",
                        TERPRET / "data" / f"{data}_hypers.json")
    _assert_same(prob)


BRANCHY = """
x = Input(4)
y = Output(4)
c = Param(2)
s = Var(4)
s.set_to(2)
with s as v:
    if v == 0:
        y.set_to(x)
    elif v == 1:
        y.set_to(1)
    else:
        if c == 0:
            y.set_to(x)
        else:
            y.set_to(3)
"""


def test_arm_liveness_is_decided_once_from_the_values_an_expression_can_take():
    model = Model(BRANCHY, "branchy.py").compile()
    live = plan(model).live
    outer = next(stmt for stmt in model.body if hasattr(stmt, "arms"))
    assert live[id(outer)] == (False, False, True, False)  # one arm per value; s is the constant 2
    assert sorted(live.values()) == [(False, False, True, False), (True, True)]  # c is learned
    assert plan(model) is plan(model)
    probs = {"c": torch.tensor([[0.25, 0.75]])}
    inputs = {"x": torch.tensor([0, 3])}
    fast, ref = (run_relaxed(model, probs, None, inputs, path)["y"] for path in ("fast", "reference"))
    torch.testing.assert_close(fast, ref)
    assert fast[0, 1].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_an_unknown_path_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown relaxed path 'quick'; known: reference, fast"):
        relaxed_class("quick")


STACKABLE = """
x = Input(4)
y = Output(4)
b = Param(3)
k = Param(4)[3]
h = Param(2)[3]
with b as i:
    if h[i] == 0:
        y.set_to(k[i])
    else:
        y.set_to(x)
"""


def test_arms_that_differ_only_in_what_they_read_are_computed_together():
    """``with b as i`` over ``k[i]``, ``h[i]``: one template, each arm's Param a stacked leaf,
    and the same values and gradients as the reference, which runs every arm on its own."""
    model = Model(STACKABLE, "stackable.py").compile()
    assert len(plan(model).templates) == 1
    logits = {"b": torch.randn(2, 3), "k": torch.randn(2, 3, 4), "h": torch.randn(2, 3, 2)}
    inputs = {"x": torch.tensor([0, 3, 1])}
    out = {}
    for path in PATHS:
        leaves = {n: v.clone().requires_grad_() for n, v in logits.items()}
        y = run_relaxed(model, {n: v.softmax(-1) for n, v in leaves.items()}, None, inputs, path)["y"]
        (y * torch.arange(4.0)).sum().backward()
        out[path] = (y.detach(), {n: v.grad for n, v in leaves.items()})
    torch.testing.assert_close(out["fast"][0], out["reference"][0])
    for name in logits:
        torch.testing.assert_close(out["fast"][1][name], out["reference"][1][name])


HEAD = """
x = Input(4)
y = Output(4)
b = Param(3)
k = Param(4)[3]
z = Var(4)
"""


@pytest.mark.parametrize("body, why", [
    ("with b as i:\n    if i == 0:\n        z.set_to(x)\n        y.set_to(z)\n    else:\n"
     "        y.set_to(k[i])\n", "arms of different shapes"),
    ("with b as i:\n    y.halt_with(k[i])\n", "arms that halt"),
])
def test_arms_are_not_stacked_when_they_differ_in_shape_or_halt(body, why):
    model = Model(HEAD + body, "unstackable.py").compile()
    assert not plan(model).templates, why


def test_the_math_blocks_are_computed_together():
    templates = plan(problem("math").compile()).templates
    assert len(templates) >= 5  # every `with pc[t] as b` with more than one live block


@pytest.mark.parametrize("arg_sizes", [(5,), (3, 4), (3, 4, 2), (2, 3, 2, 3)])
def test_a_runtime_table_is_contracted_through_its_entries_as_the_dense_indicator_does(arg_sizes):
    """Values and gradients of :func:`tables.contract` against the dense contraction, on
    arguments broadcast over different lanes (one of them a constant), with a table where some
    outputs have many preimages and some none."""
    from ntpt_ray.lang.ir import RuntimeFn
    from ntpt_ray.lang.tables import TableBags, contract

    size = 6
    grid = np.indices(arg_sizes).reshape(len(arg_sizes), -1)
    table = (grid[0] * 7 + (grid[1:] ** 2).sum(0)) % 5 if len(arg_sizes) > 1 else grid[0] % 2
    fn = RuntimeFn("F", arg_sizes, size, table.reshape(arg_sizes).astype(np.int64))
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 1, s) if k % 2 else (1, 4, s) for k, s in enumerate(arg_sizes)]
    shapes[-1] = (1, 1, arg_sizes[-1])  # a constant
    args = [torch.rand(shape, generator=generator).softmax(-1).requires_grad_() for shape in shapes]
    lead = (3, 4) if len(arg_sizes) > 1 else (1, 4)
    out = contract(TableBags(fn, torch.device("cpu")), args, lead)
    indicator = torch.nn.functional.one_hot(torch.from_numpy(fn.table), size).float()
    joint = args[0].expand(*lead, -1)
    for a in args[1:]:  # the joint marginal of all arguments, [*lead, prod(arg_sizes)]
        joint = (joint.unsqueeze(-1) * a.unsqueeze(-2)).flatten(-2)
    dense = joint @ indicator.reshape(-1, size)
    assert out.shape == (*lead, size)
    torch.testing.assert_close(out, dense)
    weights = torch.rand(*lead, size, generator=generator)
    got = torch.autograd.grad((out * weights).sum(), args)
    want = torch.autograd.grad((dense * weights).sum(), args)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_freed_memory_is_kept_for_the_next_step():
    from ntpt_ray.train.allocator import retain_freed_memory

    assert retain_freed_memory() is True  # glibc took both thresholds
    assert retain_freed_memory() is True  # once per process


@pytest.mark.parametrize("weight_shape, option_shape", [
    ((3, 32, 1, 4), (32, 16, 5)),  # arms x restarts, options per restart and example
    ((32, 1, 4), (32, 16, 5)),
    ((1, 1, 4), (2, 3, 5)),
    ((2, 3, 4), (1, 1, 5)),  # constants as options
    ((2, 1, 3, 4), (2, 5, 1, 5)),
])
def test_a_random_index_read_mixes_its_options_as_a_weighted_sum(weight_shape, option_shape):
    from ntpt_ray.lang.relaxed import _mix

    generator = torch.Generator().manual_seed(1)
    weight = torch.rand(weight_shape, generator=generator).requires_grad_()
    options = [torch.rand(option_shape, generator=generator).requires_grad_() for _ in range(weight_shape[-1])]
    got = _mix(weight, options)
    want = sum(weight[..., k:k + 1] * o for k, o in enumerate(options))
    torch.testing.assert_close(got, want)
    grads = torch.autograd.grad((got * want.detach()).sum(), [weight, *options])
    wanted = torch.autograd.grad((want * want.detach()).sum(), [weight, *options])
    for g, w in zip(grads, wanted):
        torch.testing.assert_close(g, w)
