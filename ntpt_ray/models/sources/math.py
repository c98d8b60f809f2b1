"""MATH (Gaunt et al. 2017, Sec. 4.3): evaluate a handwritten expression d0 op1 d1 op2 d2 ...

A loop over blocks. Each block holds an instruction (MOVE or APPLY), the net that reads the
symbol a MOVE lands on, argument registers, an output register and a goto. After a MOVE, a
GOTO_IF ends the program when the head is past the last symbol and returns a chosen register
(``result.halt_with``: the first halt wins).
Trained on 2-digit expressions, the right program runs on expressions of any length.
"""

# ---- hyper-parameters
M = 18                          # registers hold 0..M; arithmetic is modulo M + 1
N_DIGITS = 2                    # digits on the tape (the expression's length)
N_BLOCKS = 3
N_REGS = 3
N_NETS = 2                      # net_0 reads digits, net_1 operators (once trained)
TAPE = 2 * N_DIGITS - 1         # symbols on the tape
END = TAPE                      # head position just past the last symbol
GONE = TAPE + 1                 # a MOVE from END goes here, and stays
T = 3 * (N_DIGITS - 1) + 3      # unrolled steps: three per digit after the first, and slack
MOVE, APPLY = range(2)

# ---- inputs and output
tape = InputTensor(28, 28)[TAPE]
result = Output(M + 1)

# ---- the program to learn
instr = Param(2)[N_BLOCKS]
net_choice = Param(N_NETS)[N_BLOCKS]
arg_a = Param(N_REGS)[N_BLOCKS]
arg_b = Param(N_REGS)[N_BLOCKS]
arg_op = Param(N_REGS)[N_BLOCKS]
out_reg = Param(N_REGS)[N_BLOCKS]
goto = Param(N_BLOCKS)[N_BLOCKS]
return_reg = Param(N_REGS)

# ---- interpreter state
pos = Var(TAPE + 2)[T + 1]
pc = Var(N_BLOCKS)[T + 1]
reg = Var(M + 1)[N_REGS, T + 1]
value = Var(M + 1)[T]


@Runtime([TAPE + 2], TAPE + 2)
def STEP(p):
    return min(p + 1, GONE)


@Runtime([M + 1], 4)
def OPCODE(r):
    return r % 4


@Runtime([M + 1, M + 1, 4], M + 1)
def APPLY_OP(a, b, op):
    if op == 0:
        return (a + b) % (M + 1)
    if op == 1:
        return (a - b) % (M + 1)
    if op == 2:
        return (a * b) % (M + 1)
    return a // b if b != 0 else M


@Learn([Tensor(28, 28)], 10, hid_sizes=[256, 256])
def net_0(img):
    pass


@Learn([Tensor(28, 28)], 4, hid_sizes=[256, 256])
def net_1(img):
    pass


# ---- initialisation: the head reads the first digit into r0
pos[0].set_to(0)
pc[0].set_to(0)
reg[0, 0].set_to(net_0(tape[0]))
for r in range(1, N_REGS):
    reg[r, 0].set_to(0)

# ---- execution
for t in range(T):
    with pc[t] as b:
        if instr[b] == MOVE:
            pos[t + 1].set_to(STEP(pos[t]))
            with pos[t + 1] as p:
                if p < TAPE:
                    with net_choice[b] as n:
                        if n == 0:
                            value[t].set_to(net_0(tape[p]))
                        else:
                            value[t].set_to(net_1(tape[p]))
                else:
                    value[t].set_to(0)
        else:
            pos[t + 1].set_to(pos[t])
            value[t].set_to(APPLY_OP(reg[arg_a[b], t], reg[arg_b[b], t],
                                     OPCODE(reg[arg_op[b], t])))
        for r in range(N_REGS):
            if out_reg[b] == r:
                reg[r, t + 1].set_to(value[t])
            else:
                reg[r, t + 1].set_to(reg[r, t])
        pc[t + 1].set_to(goto[b])
    # GOTO_IF: a MOVE that lands past the last symbol halts and returns a register
    if pos[t + 1] == END:
        result.halt_with(reg[return_reg, t])
