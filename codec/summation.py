"""Another summation order, for the determinism checks (benchmarks/determinism.py, tests/test_determinism.py).

models/exact.py claims that the exact h_s gives the same integers whatever order its sums run in;
within `split_channel_sums` every convolution, and every matrix product of the exact path, sums its
inputs in two halves, in reverse order, as another BLAS or thread count might. Float results change
in the last bits; exact ones must not change at all.
"""

import torch.nn.functional as F

from codec.models import exact


class split_channel_sums:
    """Within this context torch's conv2d and conv_transpose2d, and the exact path's matmul, sum
    their inputs' two halves separately, the second half first."""

    def __enter__(self):
        self.saved = F.conv2d, F.conv_transpose2d, exact.matmul
        conv2d, conv_transpose2d, matmul = self.saved

        def split(conv, channel_dim):
            def convolve(input, weight, bias=None, *args, **kwargs):
                half = input.shape[1] // 2
                if half == 0:
                    return conv(input, weight, bias, *args, **kwargs)
                high = conv(input[:, half:], weight.narrow(channel_dim, half, weight.shape[channel_dim] - half), None, *args, **kwargs)
                return high + conv(input[:, :half], weight.narrow(channel_dim, 0, half), bias, *args, **kwargs)

            return convolve

        def split_matmul(a, b):
            half = a.shape[-1] // 2
            return matmul(a[..., half:], b[half:]) + matmul(a[..., :half], b[:half])

        F.conv2d, F.conv_transpose2d, exact.matmul = split(conv2d, 1), split(conv_transpose2d, 0), split_matmul
        return self

    def __exit__(self, *exc):
        F.conv2d, F.conv_transpose2d, exact.matmul = self.saved
