"""Learned programs as readable NTPT-style source, in the style of the paper's Fig. 3.

The shipped models have listings that read like the paper's; any other model gets the
generic one: every Param's chosen value with the probability it had.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .program import LearnedProgram


def _conf(program: LearnedProgram, *fields: tuple[str, tuple[int, ...]]) -> str:
    ps = [float(program.confidence[name][index]) for name, index in fields
          if name in program.confidence]
    return f"p={min(ps):.2f}" if ps else ""


def _line(code: str, comment: str) -> str:
    return f"{code:<36} # {comment}" if comment else code


def _math(program: LearnedProgram) -> list[str]:
    v = program.values
    hypers = program.problem.compile().hypers
    lines = ["# initialisation:", "R0 = READ(net_0)", "# program:"]
    for b in range(hypers["N_BLOCKS"]):
        i = (b,)
        lines.append(f"block_{b}:")
        if v["instr"][i] == 0:
            code = f"    R{v['out_reg'][i]} = MOVE(net_{v['net_choice'][i]})"
            conf = _conf(program, ("instr", i), ("net_choice", i), ("out_reg", i))
        else:
            code = (f"    R{v['out_reg'][i]} = APPLY(R{v['arg_a'][i]}, R{v['arg_b'][i]}, "
                    f"R{v['arg_op'][i]})")
            conf = _conf(program, ("instr", i), ("arg_a", i), ("arg_b", i), ("arg_op", i),
                         ("out_reg", i))
        lines.append(_line(code, conf))
        if v["instr"][i] == 0:
            lines.append(_line(f"    GOTO_IF end_of_tape: return R{v['return_reg'][()]}",
                               _conf(program, ("return_reg", ()))))
        lines.append(_line(f"    goto block_{v['goto'][i]}", _conf(program, ("goto", i))))
    return lines


_GRID_INSTR = ["NOOP", "MOVE_NORTH", "MOVE_EAST", "MOVE_SOUTH", "MOVE_WEST"]


def _grid(program: LearnedProgram) -> list[str]:
    v = program.values
    hypers = program.problem.compile().hypers
    aux, n_lines = hypers["N_AUX"], hypers["N_LINES"]
    net0 = int(v["net_choice"][0]) if "net_choice" in v else 0
    lines = ["# initialisation:"]
    lines += [f"R{k} = InputInt[{k}]" for k in range(aux)]
    lines.append(_line(f"R{aux} = READ(net_{net0})", _conf(program, ("net_choice", (0,)))))
    lines.append("# program:")
    for i in range(n_lines):
        reg, instr, ix = aux + 1 + i, int(v["instr"][i]), (i,)
        if instr == 5 and aux:
            code = f"R{reg} = APPLY(R{v['arg_a'][i]}, R{v['arg_b'][i]}, R{v['arg_op'][i]})"
            conf = _conf(program, ("instr", ix), ("arg_a", ix), ("arg_b", ix), ("arg_op", ix))
        elif instr == 5:
            code = f"R{reg} = ADD(R{v['arg_a'][i]}, R{v['arg_b'][i]})"
            conf = _conf(program, ("instr", ix), ("arg_a", ix), ("arg_b", ix))
        elif instr == 0:
            code, conf = f"R{reg} = NOOP", _conf(program, ("instr", ix))
        else:
            net = int(v["net_choice"][i + 1]) if "net_choice" in v else 0
            code = f"R{reg} = {_GRID_INSTR[instr]}(net_{net})"
            conf = _conf(program, ("instr", ix), ("net_choice", (i + 1,)))
        lines.append(_line(code, conf))
    lines.append(_line(f"return R{v['return_reg'][()]}", _conf(program, ("return_reg", ()))))
    return lines


def _generic(program: LearnedProgram) -> list[str]:
    lines = []
    for name, values in program.values.items():
        values = np.asarray(values)
        for index in np.ndindex(*values.shape):
            target = f"{name}[{', '.join(map(str, index))}]" if index else name
            lines.append(_line(f"{target} = {int(values[index])}", _conf(program, (name, index))))
    return lines


LISTINGS: dict[str, Callable[[LearnedProgram], list[str]]] = {"math": _math, "grid2x2": _grid}


def render(program: LearnedProgram) -> str:
    """The learned program as NTPT-style source text."""
    p = program.problem
    header = f"# {p.task.name} ({'perceptual' if p.perceptual else 'symbolic'}), model {p.model}"
    body = LISTINGS.get(p.model, _generic)(program)
    return "\n".join([header, *body]) + "\n"
