"""Commands that train and inspect models on this machine: check, train, show, evaluate, bench, data."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import typer

from ..lang.errors import NTPTError
from ..train.config import TrainConfig
from .common import (
    DataDir,
    Hypers,
    HypersFile,
    ProgramRef,
    Store,
    by_length,
    console,
    errors,
    escape,
    fail,
    load_program_ref,
    new_table,
    parse_hypers,
    parse_lengths,
    plural,
    print_table,
    progress_display,
    read_hyper_sets,
)


def check(file: Annotated[Path, typer.Argument(help="An NTPT model source (.py).")],
          hypers_file: HypersFile = None, hyper: Hypers = None) -> None:
    """Compile an NTPT model and summarise it, or print its first error (file:line)."""
    from ..lang.model import Model

    overrides = parse_hypers(hyper)
    try:
        model = Model.from_file(file)
        sets = read_hyper_sets(hypers_file) if hypers_file else {"": {}}
        compiled = {name: model.compile(**{**values, **overrides}) for name, values in sets.items()}
    except (NTPTError, ValueError) as exc:
        fail(str(exc))
    first = next(iter(compiled.values()))
    console.print(f"{file}: OK" + (f" with hypers {', '.join(sets)}" if hypers_file else ""))
    for warning in first.warnings:
        errors.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for name, c in compiled.items():
        if len(compiled) > 1 or name:
            console.print(f"[bold]{name}[/]: {c.hypers}", highlight=False)
        table = new_table("name", "kind", "shape", "range")
        space = 1
        for n, decl in c.params.items():
            table.add_row(n, "Param", str(decl.shape), f"0..{decl.size - 1}")
            free = math.prod(decl.shape) - sum(slot[0] == n for slot in c.fixed)
            space *= decl.size ** free  # elements fixed with set_to_constant are not searched
        for kind, decls in (("Input", c.inputs), ("Output", c.outputs)):
            for n, decl in decls.items():
                shown = f"Tensor{decl.tensor_shape}" if decl.is_tensor else f"0..{decl.size - 1}"
                table.add_row(n, kind, str(decl.shape), shown)
        print_table(table)
        if not name:
            console.print(f"hyper-parameters: {c.hypers}")
        console.print(f"neural functions: {', '.join(c.nets) or 'none'}")
        console.print(f"syntactically distinct programs: {space:.3g}")


def train(
    task: Annotated[str | None, typer.Argument(
        help="A built-in task: math, add2x2:top|left|bottom|right, apply2x2:... (omit with --data)")] = None,
    perceptual: Annotated[bool | None, typer.Option(
        help="Images (MNIST, handwritten operators) rather than one-hot symbols (default: symbols; "
             "images for a data file with Tensor inputs).")] = None,
    model: Annotated[str | None, typer.Option(help="Model: a shipped name or a .py file.")] = None,
    data: Annotated[Path | None, typer.Option(
        help="Your own task: examples in TerpreT's data format (needs --model).")] = None,
    hypers_file: HypersFile = None,
    train_batches: Annotated[str | None, typer.Option(
        help="Data file batches to train on, comma-separated (default: train).")] = None,
    check_batches: Annotated[str | None, typer.Option(
        help="Batches a program must get right, comma-separated (default: every other batch).")] = None,
    hyper: Hypers = None,
    restarts: Annotated[int, typer.Option(help="Independently initialised restarts.")] = 32,
    vectorise: Annotated[int, typer.Option(help="Restarts trained as one tensor computation.")] = 32,
    steps: Annotated[int, typer.Option(help="Training steps per restart.")] = TrainConfig.steps,
    batch_size: Annotated[int, typer.Option(help="Examples per step.")] = TrainConfig.batch_size,
    lr: Annotated[float, typer.Option(help="Adam learning rate of the Params.")] = TrainConfig.lr,
    library_lr: Annotated[float | None, typer.Option(help="Adam learning rate of the "
                                                        "neural library (default lr/100).")] = None,
    init_scale: Annotated[float, typer.Option(
        help="Std of the initial Param logits.")] = TrainConfig.init_scale,
    entropy_start: Annotated[float, typer.Option(
        help="Entropy weight at the start.")] = TrainConfig.entropy_start,
    entropy_end: Annotated[float, typer.Option(help="Entropy weight at the end.")] = TrainConfig.entropy_end,
    beam: Annotated[int, typer.Option(help="Candidate programs decoded per restart.")] = TrainConfig.beam,
    seed: Annotated[int, typer.Option(help="Seed of the run (restart seeds derive from it).")] = 0,
    method: Annotated[str, typer.Option(
        help="gradient (train restarts), or a discrete search of a symbolic problem, run until a "
             "program verifies: random (100,000 programs a restart), enumerate (the whole "
             "space, restarts ignored) or smt (Z3).")] = "gradient",
    library: Annotated[Path | None, typer.Option(help="Start the nets from this library.pt "
                                                    "(or run directory).")] = None,
    device: Annotated[str, typer.Option(
        help="Where gradient search runs: auto (cuda where there is a GPU), cpu or cuda.")] = "auto",
    out: Annotated[Path | None, typer.Option(help="Output directory (default runs/...).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Train restarts of a model on a task (built-in, or your model and data file), decode and
    verify them, save the winner."""
    import numpy as np
    import torch

    from ..methods import SearchSettings, check_searchable
    from ..methods.local import search_restarts
    from ..problems import file_problem, problem
    from ..train.device import resolve_device
    from ..train.run import save_run, train_restarts

    try:
        if data is not None:
            if model is None or not model.endswith(".py"):
                fail("--data needs --model MODEL.py, the NTPT source its examples are for")
            prob = file_problem(model, data, hypers_file, hypers=parse_hypers(hyper), perceptual=perceptual,
                                train_batches=_names(train_batches), check_batches=_names(check_batches),
                                name=task)
        elif task is None:
            fail("name a built-in task, or give your own: --model MODEL.py --data DATA.json")
        else:
            if hypers_file or train_batches or check_batches:
                fail("--hypers, --train-batches and --check-batches go with --data")
            prob = problem(task, perceptual=bool(perceptual), model=model, hypers=parse_hypers(hyper))
        prob.compile()
        check_searchable(method, prob.perceptual)
        resolve_device(device)  # a bad --device fails before any work
        prob.train_examples(1, np.random.default_rng(0), data_dir=data_dir)  # data present?
        config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, library_lr=library_lr,
                             init_scale=init_scale, entropy_start=entropy_start,
                             entropy_end=entropy_end, beam=beam)
        snapshot = None
        if library is not None:
            path = library / "library.pt" if library.is_dir() else library
            if not path.exists():
                fail(f"--library: no library at {path}")
            snapshot = torch.load(path, map_location="cpu")
    except (NTPTError, ValueError) as exc:
        fail(str(exc))
    name = prob.task.name
    out = out or Path("runs") / f"{name.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    chunks = math.ceil(restarts / vectorise)
    verified = 0
    if data is not None:
        console.print(prob.task.describe(), highlight=False)
    with progress_display() as progress:
        bar = progress.add_task(f"{name}: {plural(restarts, 'restart')}", total=chunks * steps,
                                status="")

        def on_step(batch, loss, accuracy):
            status = f"loss {loss:.3f}"
            if accuracy is not None:
                status += f"  best val acc {np.max(accuracy):.2f}"
            progress.update(bar, advance=1, status=f"{status}  verified {verified}")

        def on_chunk(batch):
            nonlocal verified
            verified += sum(r.verified for r in batch.results)
            progress.update(bar, status=f"verified {verified}")

        def on_batch(restart, search):
            progress.update(bar, completed=restart, status=f"restart {restart}: examined "
                                                           f"{search.examined:,}")

        try:
            if method == "gradient":
                summary = train_restarts(prob, restarts=restarts, vectorise=vectorise, config=config,
                                         seed=seed, library=snapshot, data_dir=data_dir, device=device,
                                         on_step=on_step, on_chunk=on_chunk)
            else:
                progress.update(bar, total=None if method == "enumerate" else restarts)
                summary = search_restarts(prob, SearchSettings(method=method), restarts=restarts,
                                          config=config, seed=seed, data_dir=data_dir, on_batch=on_batch)
        except (NTPTError, ValueError, FileNotFoundError) as exc:
            fail(str(exc))
    save_run(summary, out)
    _report(summary, data_dir, method)
    console.print(f"saved to {out}")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def _report(summary, data_dir, method: str = "gradient") -> None:
    n = len(summary.results)
    if not summary.problem.task.held_out:
        console.print("(nothing is held out: a verified program fits the training examples; "
                      "give more batches, or --check-batches, to check it on others)")
    if method == "gradient":
        console.print(f"verified programs: {summary.verified} of {plural(n, 'restart')} with a beam of "
                      f"{summary.config.beam} ({summary.argmax_verified} by argmax alone); "
                      f"training {summary.train_seconds:.0f} s, decoding and verification "
                      f"{summary.verify_seconds:.0f} s")
    else:
        console.print(f"{method} search: {summary.verified} verified after {plural(n, 'restart')}, "
                      f"{summary.verify_seconds:.1f} s of searching and screening")
    if summary.winner is None:
        console.print("no restart found a verified program: try more restarts or steps")
        return
    found = [f"{r.seed} (rank {r.verification.rank})" for r in summary.results if r.verified]
    console.print(f"verified restarts, by seed (beam rank of the program): {', '.join(found)}")
    console.print(summary.winner.listing(), highlight=False)
    best = next(r for r in summary.results if r.verified)
    v = best.verification
    if v.test_accuracy:
        console.print(f"held-out accuracy (exact perception): {by_length(v.test_accuracy)}")
    else:
        console.print("fits the training examples; nothing held out")
    if v.perceptual_accuracy:
        console.print(f"held-out accuracy (learned nets): {by_length(v.perceptual_accuracy)}")
        from ..evaluate import net_accuracy

        nets = net_accuracy(summary.winner_library, summary.winner, data_dir=data_dir)
        console.print("library nets on their test sets: " +
                      ", ".join(f"{name} {acc:.4f}" for name, acc in nets.items()))


def show(program_ref: ProgramRef, store: Store = None) -> None:
    """Print a saved or stored program as NTPT source."""
    program, _, _ = load_program_ref(program_ref, store)
    console.print(program.listing(), highlight=False)


def evaluate(
    program_ref: ProgramRef,
    lengths: Annotated[str, typer.Option(
        help="Input lengths (MATH digits): '2,4,8,16' or '2-16'.")] = "2,4,8,16",
    examples: Annotated[int, typer.Option(help="Random test examples per length.")] = 1000,
    perceptual: Annotated[bool | None, typer.Option(
        help="Run on images with the saved nets (default: as trained).")] = None,
    seed: int = 12345,
    store: Store = None,
    data_dir: DataDir = None,
) -> None:
    """Run a saved or stored program discretely on fresh test examples and report its accuracy."""
    from ..evaluate import evaluate_program, net_accuracy

    program, library, _ = load_program_ref(program_ref, store)
    name = program.problem.task.name
    scores: dict[int, float] = {}
    nets: dict[str, float] = {}
    try:
        wanted = parse_lengths(lengths)
        with progress_display() as progress:
            bar = progress.add_task(f"{name}: evaluating", total=len(wanted) + bool(library), status="")
            for length in wanted:  # one length at a time, as evaluate_program seeds each
                progress.update(bar, status=f"length {length}")
                found = evaluate_program(program, library, [length], examples=examples, seed=seed,
                                         perceptual=perceptual, data_dir=data_dir)
                scores.update(found)
                progress.advance(bar)
                if length not in found:  # a task of one length: evaluated once
                    break
            if library:
                progress.update(bar, completed=len(wanted), status="library nets")
                nets = net_accuracy(library, program, data_dir=data_dir)
            progress.update(bar, completed=len(wanted) + bool(library), status="done")
    except (FileNotFoundError, ValueError, KeyError, NTPTError) as exc:
        fail(str(exc))
    console.print(f"{name}: accuracy on {plural(examples, 'random test example')} per length")
    table = new_table("length", "accuracy")
    for length, accuracy in scores.items():
        table.add_row(str(length), f"{accuracy:.4f}")
    print_table(table)
    for net, accuracy in nets.items():
        console.print(f"{net} on its test set: {accuracy:.4f}")


def bench(
    restarts: Annotated[int, typer.Option(help="Restarts for the success rate.")] = 128,
    vectorise: Annotated[int, typer.Option(help="R, restarts per tensor computation.")] = 32,
    steps: Annotated[int, typer.Option(help="Training steps per restart.")] = TrainConfig.steps,
    beams: Annotated[str, typer.Option(help="Comma-separated beam widths to compare.")] = "1024,8192",
    samples: Annotated[int, typer.Option(help="Timed steps per throughput measurement.")] = 15,
    paths: Annotated[str, typer.Option(help="Comma-separated relaxed paths to time side by side "
                                            "(reference, fast); the success rate uses the last.")]
    = "reference,fast",
    seed: int = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the figures as JSON.")] = None,
) -> None:
    """Benchmark on symbolic MATH: vectorised vs one-at-a-time throughput of each relaxed path,
    argmax vs beam."""
    import json

    from ..bench import measure_success, measure_throughput
    from ..lang.relaxed import relaxed_class
    from ..problems import problem

    prob = problem("math")
    config = TrainConfig(steps=steps)
    timed = tuple(p.strip() for p in paths.split(",") if p.strip())
    for path in timed:
        try:
            relaxed_class(path)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--paths") from None
    console.print(f"throughput: {plural(samples, 'timed step')} each, R={vectorise} vs R=1, "
                  f"paths {', '.join(timed)}, interleaved")
    throughput = measure_throughput(prob, config, vectorised=vectorise, samples=samples, paths=timed)
    per_restart = f"{plural(steps, 'step')} x {plural(config.batch_size, 'example')} per restart"
    table = new_table("path", "restarts", "median step (s)", "restarts/min",
                      title=f"symbolic MATH, {per_restart}")
    for path, thr in throughput.items():
        table.add_row(path, f"R={vectorise} vectorised", f"{thr.step_seconds_vectorised:.4f}",
                      f"{thr.restarts_per_minute_vectorised:.1f}")
        table.add_row(path, "one at a time", f"{thr.step_seconds_single:.4f}",
                      f"{thr.restarts_per_minute_single:.1f}")
    print_table(table)
    for path, thr in throughput.items():
        console.print(f"{path}: vectorised / single [bold]{thr.ratio:.1f}x[/]")
    if len(timed) > 1:
        first, last = throughput[timed[0]], throughput[timed[-1]]
        console.print(f"{timed[-1]} / {timed[0]} at R={vectorise}: [bold]"
                      f"{first.step_seconds_vectorised / last.step_seconds_vectorised:.2f}x[/] faster")
    widths = tuple(int(b) for b in beams.split(","))
    with progress_display() as progress:
        bar = progress.add_task("success rate", total=math.ceil(restarts / vectorise) * steps, status="")
        succ = measure_success(prob, config, restarts=restarts, vectorise=vectorise, beams=widths,
                               seed=seed, path=timed[-1], progress=lambda *_: progress.advance(bar))
    table = new_table("decoding", "verified restarts", "rate", "decode + verify (s)", "of training",
                      title=f"verified programs over {plural(restarts, 'restart')} "
                            f"(training {succ.train_seconds:.0f} s)")
    table.add_row("argmax", str(succ.verified["argmax"]),
                  f"{succ.verified['argmax'] / restarts:.1%}", "", "")
    for key in (f"beam {b}" for b in widths):
        table.add_row(key, str(succ.verified[key]), f"{succ.verified[key] / restarts:.1%}",
                      f"{succ.decode_seconds[key]:.1f}",
                      f"{succ.decode_seconds[key] / succ.train_seconds:.1%}")
    print_table(table)
    if out is not None:
        record = {"throughput": {path: {**thr.__dict__, "ratio": thr.ratio,
                                        "restarts_per_minute_vectorised": thr.restarts_per_minute_vectorised,
                                        "restarts_per_minute_single": thr.restarts_per_minute_single}
                                 for path, thr in throughput.items()},
                  "success": succ.__dict__}
        out.write_text(json.dumps(record, indent=1))


def data(
    download: Annotated[bool, typer.Option(help="Fetch missing files (needs internet).")] = False,
    data_dir: DataDir = None,
) -> None:
    """Check the data directory (MNIST, handwritten operators); optionally download what is missing."""
    from ..data import DataError, ensure_mnist, ensure_operators, load_operators, mnist, operators
    from ..data.paths import data_dir as resolve_data_dir
    from ..data.paths import missing_data

    root = resolve_data_dir(data_dir)
    try:
        if download:
            ensure_mnist(root, download=True)
            ensure_operators(root, download=True)
        missing = mnist.missing_files(root) + operators.missing_files(root)
        if missing:
            raise missing_data(missing, "Run `ntpt data --download` to fetch them.")
        load_operators(root)  # checks the sha256 and builds the cached split
    except DataError as exc:
        fail(str(exc))
    console.print(f"data directory {root}: MNIST and operators present")
