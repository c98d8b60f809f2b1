"""Commands on the store of verified programs: programs list/show/export, and run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..lang.errors import NTPTError
from .common import (
    COMPACT,
    DataDir,
    Hypers,
    HypersFile,
    ProgramRef,
    Store,
    by_length,
    console,
    fail,
    file_error,
    load_program_at,
    load_program_ref,
    locate_program,
    new_table,
    note,
    parse_hypers,
    plural,
    print_table,
    read_hyper_sets,
)

if TYPE_CHECKING:
    import numpy as np

    from ..store import ProgramRecord

app = typer.Typer(help="Verified programs in the store: list, show, export.", no_args_is_help=True)

DIGITS = "0123456789"
OPERATORS = {"+": 0, "-": 1, "−": 1, "x": 2, "X": 2, "*": 2, "×": 2, "/": 3, "÷": 3}
EXPRESSION = "an expression alternates digits and operators, e.g. 3+4x2"


def _spans(names: list[str]) -> str:
    """Check-set names, runs of lengths compressed: ``["2", "3", "4", "8"]`` as ``2-4,8``."""
    spans: list[list[int]] = []
    for n in sorted(int(x) for x in names if str(x).isdigit()):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    words = [str(x) for x in names if not str(x).isdigit()]
    return ",".join([str(a) if a == b else f"{a}-{b}" for a, b in spans] + words)


@app.command("list")
def list_programs(
    store: Store = None,
    sweep: Annotated[str | None, typer.Option(help="Only the programs of this sweep.")] = None,
) -> None:
    """List the stored programs, oldest found first: library version started from, seconds into
    the sweep, the check sets verified on, program hash (`programs show` has the rest)."""
    from ..jsonfile import BadFile
    from ..store import ProgramStore, default_store

    programs = ProgramStore(default_store(store))
    if programs.root.exists() and not programs.root.is_dir():
        fail(f"{programs.root} is a file, not a program store")
    if not programs.root.is_dir():
        fail(f"no program store at {programs.root}: a sweep creates it (or pass --store, set NTPT_STORE)")
    try:
        records = programs.list(sweep, on_skip=lambda exc: note(f"skipped {exc}"))
    except BadFile as exc:
        fail(str(exc))
    if not records:
        if sweep:
            message = f"no programs of sweep '{sweep}' in store {programs.root} ({len(programs)} in all)"
        else:
            message = (f"no readable program in store {programs.root}" if len(programs)
                       else f"store {programs.root} is empty")
        console.print(message, highlight=False)
        return
    console.print(f"{plural(len(records), 'verified program')} in {programs.root}", highlight=False)
    table = new_table("id", "task", "lib", "found at", "verified", "hash", wrap=("task", "verified"),
                      **COMPACT)
    for r in records:
        accuracy = r.verification.get("test_accuracy", {})
        table.add_row(r.id, r.program["task"] + (" (images)" if r.program["perceptual"] else ""),
                      f"v{r.library_version}", f"{r.seconds_into_sweep:.0f} s",
                      _spans([n for n, acc in accuracy.items() if acc == 1.0]), r.program_hash[:8])
    print_table(table)


@app.command()
def show(program_ref: ProgramRef, store: Store = None) -> None:
    """Print a program's provenance (stored programs) and the program as NTPT source."""
    from ..store import program_hash

    folder, stored = locate_program(program_ref, store)
    program, _ = load_program_at(folder)
    if stored:
        label, p, digest = stored.record.id, stored.record.program, stored.record.program_hash
    else:
        p = program.to_dict()
        label, digest = program_ref, program_hash(p)
    console.print(f"[bold]{label}[/]  ({folder})", highlight=False)
    console.print(f"task {p['task']} ({'perceptual' if p['perceptual'] else 'symbolic'}), "
                  f"model {p['model']} (source {p.get('model_hash', '?')}), program hash {digest}")
    if p.get("data_fingerprint"):
        console.print(f"examples: data fingerprint {p['data_fingerprint']}")
    if stored:
        _provenance(stored.record)
    console.print(program.listing(), highlight=False)


def _provenance(r: ProgramRecord) -> None:
    """Where a stored program came from and how well it did."""
    v = r.verification
    console.print(f"sweep {r.sweep}, restart {r.restart}, seed {r.seed}, "
                  f"started from library version {r.library_version}")
    console.print(f"started {r.started_at}, found {r.found_at} "
                  f"({r.seconds_into_sweep:.1f} s into the sweep)")
    accuracy = f"validation accuracy {v.get('val_accuracy', float('nan')):.4f}"
    if r.method != "gradient":
        examined = plural(v["examined"], "candidate") if "examined" in v else "candidates"
        console.print(f"found by {r.method} search ({examined} examined), {accuracy}")
    elif "rank" in v or "val_accuracy" in v:
        how = " (the argmax)" if v.get("argmax_verified") else ""
        console.print(f"found by gradient search, beam rank {v.get('rank', '?')}{how}, {accuracy}")
    if v.get("test_accuracy"):
        console.print(f"held-out accuracy (exact perception): {by_length(v['test_accuracy'])}")
    if v.get("perceptual_accuracy"):
        console.print(f"held-out accuracy (learned nets): {by_length(v['perceptual_accuracy'])}")
    if r.val_curve:
        last = ", ".join(f"{seen}: {acc:.3f}" for seen, acc in r.val_curve[-5:])
        console.print(f"validation curve (examples seen: accuracy), last {min(5, len(r.val_curve))} "
                      f"of {len(r.val_curve)}: {last}")


@app.command()
def export(
    program_ref: ProgramRef,
    dest: Annotated[Path, typer.Argument(help="Destination folder (the copy goes inside it if it exists).")],
    store: Store = None,
) -> None:
    """Copy a program's folder (readable by ntpt show / evaluate / run) elsewhere."""
    from ..store import copy_program

    folder, stored = locate_program(program_ref, store)
    folder = folder if folder.is_dir() else folder.parent
    if not (folder / "program.json").is_file():
        fail(f"no verified program at {folder / 'program.json'}")
    try:
        path = copy_program(folder, dest, stored.record.id if stored else folder.resolve().name)
    except OSError as exc:
        fail(file_error(exc))
    console.print(f"exported to {path}")


def run(
    program_ref: ProgramRef,
    json_input: Annotated[str | None, typer.Option(
        "--json", help="One instance as JSON, {Input name: value or list}, e.g. '{\"xs\": [3, 5, 1]}'; "
                       "prints the Outputs as one JSON object on its last line.")] = None,
    hypers_file: HypersFile = None,
    hyper: Hypers = None,
    inputs: Annotated[list[str] | None, typer.Option(
        "--input", "-i", help="Built-in tasks' shorthand (repeatable): MATH '3+4x2-7/1'; ADD2X2 the "
                              "grid's four digits '1 2 3 4' (cells 0 1 | 2 3); APPLY2X2 its four "
                              "operators '+ - x /'.")] = None,
    ints: Annotated[list[str] | None, typer.Option(
        help="APPLY2X2's integers 'd1 d2 d3': once for every input, or once per input.")] = None,
    images: Annotated[bool, typer.Option(
        "--images", help="Perceptual programs: show it test-set images of the symbols and read them "
                         "with its own nets (default: exact perception).")] = False,
    store: Store = None,
    seed: Annotated[int, typer.Option(help="Seed of the images drawn.")] = 0,
    data_dir: DataDir = None,
) -> None:
    """Run a verified program discretely: on one JSON instance, or (built-in tasks) on inputs
    you give, compared with the right answers."""
    import json

    from ..library import OracleLibrary, saved_nets
    from ..tasks import GeneratedTask

    program, nets_state, label = load_program_ref(program_ref, store)
    problem = program.problem
    if (json_input is None) == (not inputs):
        fail("give one of --json '{...}' (any program) or --input (built-in tasks)")
    if json_input is not None:
        try:
            instance = json.loads(json_input)
            if not isinstance(instance, dict):
                raise ValueError("--json: expected an object {Input name: value}")
            overrides = parse_hypers(hyper)
            if hypers_file:
                sets = read_hyper_sets(hypers_file)
                if len(sets) != 1:
                    raise ValueError(f"--hypers {hypers_file}: name one set, FILE:SET "
                                     f"(sets: {', '.join(sets)})")
                overrides = {**next(iter(sets.values())), **overrides}
            hypers = {**problem.task.train_hypers, **overrides}
            nets = problem.compile(hypers).nets
            if nets_state and problem.perceptual:
                library = saved_nets(nets, nets_state)  # images, read with the program's own nets
            else:
                library = OracleLibrary(nets)  # symbol ids, perceived exactly
            outputs = program.run_instance(instance, hypers=hypers, library=library)
        except (ValueError, NTPTError) as exc:
            fail(f"{label}: {exc}")
        console.print(json.dumps(outputs), highlight=False, soft_wrap=True)
        return
    task = problem.task
    if not isinstance(task, GeneratedTask):
        fail(f"--input is the built-in tasks' shorthand; {label} is task '{task.name}': use --json")
    _run_builtin(program, nets_state, label, task, inputs, ints, images, seed, data_dir)


def _run_builtin(program, nets_state, label, task, inputs, ints, images, seed, data_dir) -> None:
    import numpy as np

    from ..library import OracleLibrary, saved_nets

    family = task.family
    examples = [_parse(family, text) for text in inputs]
    given = [_parse_ints(text) for text in ints or []]
    if family == "apply2x2":
        if len(given) not in (1, len(inputs)):
            fail(f"APPLY2X2 needs --ints 'd1 d2 d3' once, or once per --input ({len(inputs)}); "
                 f"got {len(given)}")
        given = given * len(inputs) if len(given) == 1 else given
    elif given:
        fail(f"--ints is for APPLY2X2 programs; {label} is {task.name}")
    nets = program.problem.compile().nets
    if images:
        if not nets_state:
            fail(f"--images: {label} has no stored nets to read images with; run it without --images")
        from ..data.symbols import SymbolPools

        try:
            pools = SymbolPools.load(data_dir, "test")
        except ValueError as exc:
            fail(str(exc))
        rng = np.random.default_rng(seed)
        library = saved_nets(nets, nets_state)
    else:
        library = OracleLibrary(nets)
    console.print(f"{label} ({task.name}) with "
                  + (f"its nets on test-set images (seed {seed})" if images else "exact perception"),
                  highlight=False)
    table = new_table("input", "program", "answer", "agree")
    for k, symbols in enumerate(examples):
        shown = pools.sample(symbols, rng) if images else symbols
        feed, length = task.feed(shown, given[k] if given else None)
        out = int(program.run(feed, hypers=task.hypers_of(length), library=library)["result"][0])
        answer = task.reference(symbols, given[k] if given else None)
        table.add_row(_render(family, symbols, given[k] if given else None),
                      "none" if out < 0 else str(out), str(answer), "yes" if out == answer else "NO")
    print_table(table)


def _parse(family: str, text: str) -> np.ndarray:
    """Symbol ids of one --input (MATH expression, ADD2X2 digits, APPLY2X2 operators)."""
    import numpy as np

    from ..data.symbols import OPERATOR_OFFSET
    from ..lang.limits import over

    chars = "".join(text.split())
    if (message := over("MAX_INPUT", len(chars), "symbols")) is not None:
        fail(f"--input: {message}")
    for c in chars:
        if c not in DIGITS and c not in OPERATORS:
            fail(f"--input '{text}': '{c}' is neither a digit 0-9 nor an operator + - x /")
    if family == "math":
        if len(chars) % 2 == 0 or any((c in DIGITS) != (k % 2 == 0) for k, c in enumerate(chars)):
            fail(f"--input '{text}': {EXPRESSION}")
    elif family == "add2x2" and (len(chars) != 4 or any(c not in DIGITS for c in chars)):
        fail(f"--input '{text}': ADD2X2 takes the grid's four digits, cells 0 1 | 2 3, e.g. '1 2 3 4'")
    elif family == "apply2x2" and (len(chars) != 4 or any(c not in OPERATORS for c in chars)):
        fail(f"--input '{text}': APPLY2X2 takes the grid's four operators, cells 0 1 | 2 3, "
             "e.g. '+ - x /'")
    return np.array([int(c) if c in DIGITS else OPERATOR_OFFSET + OPERATORS[c] for c in chars],
                    dtype=np.int64)


def _parse_ints(text: str) -> np.ndarray:
    import numpy as np

    parts = text.replace(",", " ").split()
    if len(parts) != 3 or any(len(p) != 1 or p not in DIGITS for p in parts):
        fail(f"--ints '{text}': APPLY2X2 takes three integers 0-9, e.g. '3 4 5'")
    return np.array([int(p) for p in parts], dtype=np.int64)


def _render(family: str, symbols: np.ndarray, ints: np.ndarray | None) -> str:
    from ..data.symbols import SYMBOLS

    text = [SYMBOLS[s] for s in symbols]
    if family == "math":
        return " ".join(text)
    grid = f"{text[0]} {text[1]} | {text[2]} {text[3]}"
    return grid if ints is None else f"{grid}, ints {' '.join(map(str, ints))}"
