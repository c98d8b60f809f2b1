"""The larger of two handwritten digits: a user's own perceptual task.

Two MNIST digits come in as images; the output is the larger of the two values. The program
to learn is one instruction out of four; net_0 learns to read digits from the answers alone
(it is never shown a digit label).
"""

MAX, MIN, FIRST, SECOND = range(4)

digits = InputTensor(28, 28)[2]
larger = Output(10)

op = Param(4)
a = Var(10)
b = Var(10)


@Runtime([10, 10, 4], 10)
def APPLY(x, y, o):
    if o == MAX:
        return max(x, y)
    if o == MIN:
        return min(x, y)
    return x if o == FIRST else y


@Learn([Tensor(28, 28)], 10, hid_sizes=[256, 256])
def net_0(img):
    pass


a.set_to(net_0(digits[0]))
b.set_to(net_0(digits[1]))
larger.set_to(APPLY(a, b, op))
