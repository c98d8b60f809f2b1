"""ADD2X2 / APPLY2X2 (Gaunt et al. 2017, Sec. 4.2): straight-line code over a 2x2 image grid.

A read head starts on the top-left cell and reads it into a register (R_READ = READ). Each of
N_LINES lines runs one instruction and stores its result in its own immutable register:
NOOP, MOVE_NORTH/EAST/SOUTH/WEST (move the head if possible and read the new cell with the
net chosen by net_choice), or ARITH: ADD(a, b) for ADD2X2, APPLY(a, b, op) for APPLY2X2, which
also loads N_AUX auxiliary integers into the first registers. A final register is returned.
"""

# ---- hyper-parameters
M = 18                          # registers hold 0..M; arithmetic is modulo M + 1
N_LINES = 4
N_AUX = 0                       # auxiliary input integers: 0 for ADD2X2, 3 for APPLY2X2
N_NETS = 2                      # nets a line may read with (1 on the very first task)
R_READ = N_AUX                  # the register holding the first READ
N_REGS = N_AUX + 1 + N_LINES
NOOP, MOVE_NORTH, MOVE_EAST, MOVE_SOUTH, MOVE_WEST, ARITH = range(6)

# ---- inputs and output
grid = InputTensor(28, 28)[4]   # cells 0 1 / 2 3
ints = Input(M + 1)[N_AUX]  # the auxiliary integers d1, d2, d3
result = Output(M + 1)

# ---- the program to learn
instr = Param(6)[N_LINES]
net_choice = Param(N_NETS)[N_LINES + 1]     # [0] for the first READ
arg_a = Param(N_REGS)[N_LINES]
arg_b = Param(N_REGS)[N_LINES]
arg_op = Param(N_REGS)[N_LINES]             # used by APPLY only
return_reg = Param(N_REGS)

# ---- interpreter state: reg[i, r] is register r before line i (unwritten ones hold 0)
pos = Var(4)[N_LINES + 1]
reg = Var(M + 1)[N_LINES + 1, N_REGS]
read = Var(M + 1)[N_LINES + 1]


@Runtime([4, 6], 4)
def MOVE(cell, instruction):
    row, col = divmod(cell, 2)
    if instruction == MOVE_NORTH:
        row = 0
    elif instruction == MOVE_SOUTH:
        row = 1
    elif instruction == MOVE_EAST:
        col = 1
    elif instruction == MOVE_WEST:
        col = 0
    return 2 * row + col


@Runtime([M + 1, M + 1], M + 1)
def ADD(a, b):
    return (a + b) % (M + 1)


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


# ---- initialisation: aux integers, then READ the top-left cell
pos[0].set_to(0)
for k in range(N_AUX):
    reg[0, k].set_to(ints[k])
with net_choice[0] as n:
    if n == 0:
        read[0].set_to(net_0(grid[0]))
    else:
        read[0].set_to(net_1(grid[0]))
reg[0, R_READ].set_to(read[0])
for r in range(R_READ + 1, N_REGS):
    reg[0, r].set_to(0)

# ---- the program: line i writes register R_READ + 1 + i
for i in range(N_LINES):
    line = R_READ + 1 + i
    if instr[i] == NOOP:
        pos[i + 1].set_to(pos[i])
        read[i + 1].set_to(0)
    elif instr[i] == ARITH:
        pos[i + 1].set_to(pos[i])
        if N_AUX == 0:
            read[i + 1].set_to(ADD(reg[i, arg_a[i]], reg[i, arg_b[i]]))
        else:
            read[i + 1].set_to(APPLY_OP(reg[i, arg_a[i]], reg[i, arg_b[i]],
                                        OPCODE(reg[i, arg_op[i]])))
    else:
        pos[i + 1].set_to(MOVE(pos[i], instr[i]))
        with pos[i + 1] as p:
            with net_choice[i + 1] as n:
                if n == 0:
                    read[i + 1].set_to(net_0(grid[p]))
                else:
                    read[i + 1].set_to(net_1(grid[p]))
    for r in range(N_REGS):
        if r == line:
            reg[i + 1, r].set_to(read[i + 1])
        else:
            reg[i + 1, r].set_to(reg[i, r])

result.set_to(reg[N_LINES, return_reg])
