"""The purely neural lifelong baselines (Indep, PNN, MTNN-1/2): shapes, sizes, what trains, lifetimes."""

import pytest
import torch
import torch.nn.functional as F

from ntpt_ray.lifelong.baselines import BASELINES, make_baseline
from ntpt_ray.lifelong.batch import N_CLASSES, GridBatch

torch.set_num_threads(1)

TASKS = [f"{kind}:{side}" for kind in ("add2x2", "apply2x2") for side in ("top", "left", "bottom", "right")]

EMBED_0 = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10  # net_0-shaped embedding
EMBED_1 = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 4 + 4  # net_1-shaped embedding
HIDDEN_2 = 2 * (128 * 128 + 128)  # two more hidden layers of 128
OUT = 128 * 19 + 19


def head(width: int, hidden: int = 3) -> int:
    return width * 128 + 128 + (HIDDEN_2 if hidden == 3 else 0) + OUT


def count(params) -> int:
    return sum(p.numel() for p in params)


def random_batch(size: int = 6, seed: int = 0) -> GridBatch:
    g = torch.Generator().manual_seed(seed)
    return GridBatch(images=torch.rand(size, 4, 28, 28, generator=g),
                     symbols=torch.randint(0, 10, (size, 4), generator=g),
                     ints=torch.randint(0, 10, (size, 3), generator=g),
                     target=torch.randint(0, N_CLASSES, (size,), generator=g))


@pytest.fixture(scope="module")
def models():
    """One 2-lifetime model per baseline, shared by the read-only tests."""
    return {name: make_baseline(name, [3, 8], tasks=TASKS) for name in BASELINES}


@pytest.mark.parametrize("name", BASELINES)
def test_shapes_for_add_and_apply_tasks(models, name):
    model, batch = models[name], random_batch(5)
    assert model.name == name
    for task in (0, 2, 4, 7):
        assert model.logits(task, batch).shape == (2, 5, N_CLASSES)
        loss = model.loss(task, batch)
        assert loss.shape == (2,) and torch.isfinite(loss).all()
        answers = model.predict(task, batch)
        assert answers.shape == (2, 5) and answers.dtype == torch.int64
        assert ((answers >= 0) & (answers < N_CLASSES)).all()
    with pytest.raises(IndexError):
        model.logits(len(TASKS), batch)


def test_unknown_baseline_lists_allowed_names():
    with pytest.raises(ValueError, match="indep, pnn, mtnn-1, mtnn-2"):
        make_baseline("lstm", [0], tasks=TASKS)


def test_parameter_counts_by_hand():
    indep = make_baseline("indep", [0], tasks=TASKS)
    assert count(indep.columns[0].embed.parameters()) == EMBED_0
    assert count(indep.columns[0].head.parameters()) == head(40)
    assert count(indep.columns[4].head.parameters()) == head(70)  # 40 + 3 one-hots of 10
    assert count(indep.parameters()) == 4 * (EMBED_0 + head(40)) + 4 * (EMBED_0 + head(70))

    pnn = make_baseline("pnn", [0], tasks=TASKS)
    per_earlier = 256 * 256 + 256 * 10 + 2 * 128 * 128 + 128 * 19  # bias-free laterals
    widths = [40] * 4 + [70] * 4
    for k, column in enumerate(pnn.columns):
        assert count(column.laterals.parameters()) == k * per_earlier + 128 * sum(widths[:k])
    assert count(pnn.parameters()) == count(indep.parameters()) + count(
        p for c in pnn.columns for p in c.laterals.parameters())

    for name, add_hidden in (("mtnn-1", 3), ("mtnn-2", 1)):
        mtnn = make_baseline(name, [0], tasks=TASKS)
        assert count(mtnn.perception["net_0"].parameters()) == EMBED_0
        assert count(mtnn.perception["net_1"].parameters()) == EMBED_1
        heads = [head(40, add_hidden)] + [head(56, add_hidden)] * 3 + [head(86)] * 4  # task 0: net_0 only
        assert [count(h.parameters()) for h in mtnn.heads] == heads
        assert count(mtnn.parameters()) == EMBED_0 + EMBED_1 + sum(heads)


@pytest.mark.parametrize("name", BASELINES)
def test_exactly_the_trained_parameters_get_gradients(models, name):
    model, batch = models[name], random_batch(6)
    for task in (0, 1, 4, 7):
        model.zero_grad(set_to_none=True)
        model.loss(task, batch).sum().backward()
        with_grad = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        assert with_grad == {id(p) for p in model.trained_parameters(task)}, (name, task)
        if name in ("indep", "pnn"):  # only the active column (with its laterals)
            assert with_grad == {id(p) for p in model.columns[task].parameters()}
        else:  # the task's head and the perception it sees; task 0 never sees net_1
            net_1 = {id(p) for p in model.perception["net_1"].parameters()}
            assert net_1.isdisjoint(with_grad) == (task == 0)
            assert {id(p) for p in model.heads[task].parameters()} <= with_grad
    model.zero_grad(set_to_none=True)


def test_mtnn_perception_learns_100x_slower(models):
    groups = models["mtnn-2"].parameter_groups(1e-3)
    perception = {id(p) for p in models["mtnn-2"].perception.parameters()}
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-5)]
    assert {id(p) for p in groups[1]["params"]} == perception
    assert count(groups[0]["params"]) + count(groups[1]["params"]) == count(models["mtnn-2"].parameters())
    assert len(models["pnn"].parameter_groups(0.1)) == 1


@pytest.mark.parametrize("name", BASELINES)
def test_lifetimes_are_independent(models, name):
    batch = random_batch(4, seed=1)
    single = {s: make_baseline(name, [s], tasks=TASKS) for s in (3, 8)}
    with torch.no_grad():
        for task in (0, 5):
            both = models[name].logits(task, batch)
            for r, s in enumerate((3, 8)):
                torch.testing.assert_close(both[r], single[s].logits(task, batch)[0], rtol=1e-5, atol=1e-5)
    assert not torch.equal(both[0], both[1])


def reference_pnn_logits(model, task: int, batch: GridBatch) -> torch.Tensor:
    """PNN written out the slow way: column k's layer l adds U_kj h_j for every j < k."""
    pixels = batch.images.reshape(-1, 784)
    inputs: list[list[torch.Tensor]] = []
    for k in range(task + 1):
        column, x, mine = model.columns[k], pixels, []
        for l, layer in enumerate(column.stack):
            pre = torch.matmul(x, layer.weight) + layer.bias
            if l > 0 and k > 0:
                lateral = column.laterals[l - 1]
                for j, u in enumerate(lateral.weight.split(lateral.widths, dim=1)):
                    pre = pre + inputs[j][l - 1] @ u
            if l == 6:
                break
            if l == 2:
                x = pre.reshape(pre.shape[0], len(batch), 40)
                if TASKS[k].startswith("apply2x2"):
                    aux = F.one_hot(batch.ints, 10).float().flatten(1)
                    x = torch.cat([x, aux.expand(x.shape[0], -1, -1)], -1)
            else:
                x = torch.relu(pre)
            mine.append(x)
        inputs.append(mine)
    return pre


def test_pnn_matches_the_reference_and_reads_only_earlier_columns(models):
    pnn, batch = models["pnn"], random_batch(4, seed=2)
    with torch.no_grad():
        for task in (0, 1, 4, 6):
            torch.testing.assert_close(pnn.logits(task, batch), reference_pnn_logits(pnn, task, batch),
                                       rtol=1e-4, atol=1e-5)
        indep = make_baseline("indep", [3, 8], tasks=TASKS)  # column 0 has no laterals
        torch.testing.assert_close(pnn.logits(0, batch), indep.logits(0, batch))
        before = pnn.logits(3, batch)
        later = pnn.columns[4].head.layers[0].bias
        later += 1.0  # a later column does not matter
        torch.testing.assert_close(pnn.logits(3, batch), before)
        later -= 1.0
        earlier = pnn.columns[1].head.layers[0].bias
        earlier += 1.0  # an earlier one does, through the laterals
        assert not torch.allclose(pnn.logits(3, batch), before)
        earlier -= 1.0


def symbol_batch(size: int, seed: int) -> GridBatch:
    """Cells hold symbols 0..3 drawn as a bright 6x6 patch at row 7*s on faint noise;
    target = top-left + bottom-left (what add2x2:left asks, on 4 symbols)."""
    g = torch.Generator().manual_seed(seed)
    symbols = torch.randint(0, 4, (size, 4), generator=g)
    images = 0.05 * torch.rand(size, 4, 28, 28, generator=g)
    for s in range(4):
        rows, cells = (symbols == s).nonzero(as_tuple=True)
        images[rows, cells, 7 * s:7 * s + 6, :6] = 1.0
    return GridBatch(images, symbols, torch.zeros(size, 3, dtype=torch.long), symbols[:, 0] + symbols[:, 2])


@pytest.mark.parametrize("name", BASELINES)
def test_rmsprop_learns_a_tiny_problem(name):
    model, batch = make_baseline(name, [0], tasks=TASKS), symbol_batch(32, seed=3)
    optimiser = torch.optim.RMSprop(model.parameter_groups(2e-3))
    task = 1  # add2x2:left: PNN reads column 0 through laterals, MTNN sees both nets
    with torch.no_grad():
        first = model.loss(task, batch)
    for _ in range(100):
        optimiser.zero_grad()
        model.loss(task, batch).sum().backward()
        optimiser.step()
    with torch.no_grad():
        last = model.loss(task, batch)
        accuracy = (model.predict(task, batch) == batch.target).float().mean(1)
    assert (last < 0.25 * first).all(), (first, last)
    assert (accuracy > 0.8).all(), accuracy
