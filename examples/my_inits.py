"""An example of your own initialization scheme, used as

    initbench compare examples/my_inits.py:scaled_normal_ kaiming_normal
    initbench compare examples/my_inits.py:scaled_normal_:0.5    # scale=0.5

A per-layer scheme is ``fn(weight, bias, generator, ...)``: it fills one Linear
layer's tensors in place, drawing from ``generator``. Its keyword parameters after
those three are set by numbers after a further colon, in order.
"""

import math


def scaled_normal_(weight, bias, generator, *, scale=1.0):
    """Kaiming's normal for ReLU, times a factor: scale=1 is kaiming_normal's variance.

    Formula: W ~ N(0, (scale * sqrt(2/fan_in))^2); b = 0
    Reference: He et al. 2015, "Delving Deep into Rectifiers", scaled
    """
    fan_in = weight.shape[1]
    weight.normal_(0.0, scale * math.sqrt(2.0 / fan_in), generator=generator)
    bias.zero_()
