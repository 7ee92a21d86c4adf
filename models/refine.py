"""Encoder-side search of the latents (effort levels above 0): the decoder and the file format do not change.

g_a and h_a give one amortized guess of an image's latents. At effort E > 0 the encoder then lowers
that image's own rate-distortion cost R + λ·255²·MSE (λ of its quality: the loss the model trained
on) by gradient steps on y and z through the real decoder's transforms and entropy models, after
Yang, Bamler and Mandt 2020 ("Improving Inference for Neural Image Compression"): the rounding of
y's and z's symbols is stochastic Gumbel annealing (SGA), a soft choice between the two nearest
integers that hardens as its temperature falls, so that the search sees the rounding it will get.
The result is coded for real beside effort 0's latents, and the cheaper of the two in real bytes
and decoded 8-bit pixels is kept: a refined file never costs more than the plain one.

Small images are searched in one piece; larger ones tile by tile, each tile's distortion taken over
its own pixels with a ring of its neighbours' latents (as searched so far, held fixed and rounded)
around it, so that memory stays bounded. Only the image's own pixels count, not its padding. The
search is seeded: the same image, quality and effort give the same file on the same machine with
the same thread count. Terms (effort, quality, rate position, gain, tile): docs/glossary.md; what
each level costs and buys: docs/effort.md.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from codec.models import coding

# Gradient steps at each effort level (0: g_a's and h_a's latents as they are).
ITERATIONS = (0, 4, 8, 14, 22, 32, 46, 64, 96, 140)
MAX_EFFORT = len(ITERATIONS) - 1
DEFAULT_EFFORT = 0  # the amortized encoder: even effort 1's search costs several times its encode time (docs/effort.md)
LEARNING_RATE = 0.02  # Adam on y·g and z (in units of their symbols), decayed to a tenth of it by a cosine
START_TEMPERATURE, END_TEMPERATURE = 0.5, 0.05  # of SGA's rounding, falling geometrically over the steps
# The search keeps every activation of g_s for its gradient, so its memory grows with the image
# (docs/effort.md has the peaks). Images up to SEARCH_WHOLE_PIXELS are searched in one piece, larger
# ones in tiles of about SEARCH_TILE latents a side (384 pixels), rounded up to whole blocks of the hyperprior.
SEARCH_WHOLE_PIXELS = 1 << 19
SEARCH_TILE = 24


class SearchError(ValueError):
    """An effort that is not a level, or a search that this model cannot run on this image."""


def check_effort(effort) -> int:
    """An effort level as given, if it is one.

    Args:
        effort: the value to check; an int from 0 to MAX_EFFORT (bool refused).

    Returns:
        int: `effort` unchanged.

    Raises:
        SearchError: for anything else.
    """
    if isinstance(effort, bool) or not isinstance(effort, int) or not 0 <= effort <= MAX_EFFORT:
        raise SearchError(f"effort must be an integer from 0 to {MAX_EFFORT} (got {effort!r})")
    return effort


def sga_round(values: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Stochastic Gumbel annealing: a relaxed, differentiable draw between floor and ceil.

    The draw is likelier toward the nearer integer; as `temperature` falls it becomes rounding.

    Args:
        values: float tensor of any shape, in units of symbols.
        temperature: the annealing temperature, > 0.
        generator: the seeded CPU generator of the Gumbel noise.

    Returns:
        Tensor: same shape and dtype, between floor(values) and floor(values) + 1.
    """
    floor = values.floor()
    up = values - floor
    eps = 1e-5
    logits = torch.stack([-torch.atanh(up.clamp(-1 + eps, 1 - eps)), -torch.atanh((1 - up).clamp(-1 + eps, 1 - eps))], -1)
    gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1 - 1e-10)))
    weights = torch.softmax((logits / temperature + gumbel) / temperature, dim=-1)
    return floor + weights[..., 1]


def rounded(values: torch.Tensor, temperature: float, generator: torch.Generator, searched: torch.Tensor | None) -> torch.Tensor:
    """SGA's rounding where the search moves the values, plain rounding of the fixed neighbours
    (which is how they will be coded).

    Args:
        values: (N, C, H, W) float tensor.
        temperature: SGA's temperature.
        generator: the search's generator.
        searched: (H, W) bool mask of the values the search moves, or None for all of them.

    Returns:
        Tensor: (N, C, H, W), differentiable where searched.
    """
    soft = sga_round(values, temperature, generator)
    return soft if searched is None else torch.where(searched, soft, values.detach().round())


def z_likelihood(entropy_bottleneck, z_hat: torch.Tensor) -> torch.Tensor:
    """The EntropyBottleneck's likelihood of each (soft-rounded) hyper-latent, with its gradient.

    Args:
        entropy_bottleneck: the model's CompressAI EntropyBottleneck.
        z_hat: (N, C, h, w) float32 hyper-latents, medians included.

    Returns:
        Tensor: (C, 1, N * h * w) float32 likelihoods, lower-bounded as in training.
    """
    channels_first = z_hat.transpose(0, 1).reshape(z_hat.shape[1], 1, -1)
    likelihood, _, _ = entropy_bottleneck._likelihood(channels_first)
    return entropy_bottleneck.likelihood_lower_bound(likelihood)


@contextlib.contextmanager
def search_precision(net):
    """Within: g_a and g_s in bfloat16 where the CPU has it, for the search, which needs gradients
    of the float transforms, not exact values; on exit the model's precision is restored.

    Args:
        net: a variable-rate model.
    """
    was_bfloat16 = net.training_in_bfloat16
    net.training_in_bfloat16 = coding.DTYPE == torch.bfloat16
    try:
        yield
    finally:
        net.training_in_bfloat16 = was_bfloat16


class Window:
    """What one search works on: a window of the latents and the pixels they are scored against.

    Args:
        net: the model.
        scaled_y: (1, M, h, w) float32, y times the gain g, searched in place.
        z: (1, C_z, h / r, w / r) float32 hyper-latents, searched in place.
        x: (1, 3, height, width) float32 pixels in [0, 1] that the window's synthesis is scored against.
        crop: (top, left, height, width) of x within g_s's output of the window.
        searched_y: (h, w) bool mask of the latents of y the search may move; None: all of them.
        searched_z: (h / r, w / r) bool mask for z; None: all of them.
    """

    def __init__(self, net, scaled_y, z, x, crop, searched_y=None, searched_z=None):
        self.net, self.scaled_y, self.z, self.x, self.crop = net, scaled_y, z, x, crop
        self.searched_y, self.searched_z = searched_y, searched_z


def rd_cost(window: Window, gains, lmbda: float, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """R + λ·255²·MSE of the window's latents, their roundings drawn by SGA at `temperature`.

    R is counted per pixel of the window's crop (the fixed neighbours' bits are a constant).

    Args:
        window: the latents and pixels.
        gains: (gain, inverse_gain, medians): g and g' at the rate position, (1, M, 1, 1) float32
            each, and z's medians, (1, C_z, 1, 1).
        lmbda: λ at the rate position.
        temperature: SGA's temperature.
        generator: the search's generator.

    Returns:
        Tensor: scalar float32, differentiable in the window's latents.
    """
    net, (gain, inverse_gain, medians) = window.net, gains
    z_hat = rounded(window.z - medians, temperature, generator, window.searched_z) + medians
    scales, means = net.gaussian_params(z_hat)
    symbols = rounded(window.scaled_y - means * gain, temperature, generator, window.searched_y)
    y_likelihood = net.gaussian_conditional.likelihood_lower_bound(net.gaussian_conditional._likelihood(symbols, scales * gain))
    bits = -(torch.log2(y_likelihood).sum() + torch.log2(z_likelihood(net.entropy_bottleneck, z_hat)).sum())
    top, left, height, width = window.crop
    x_hat = net.synthesis(symbols * inverse_gain + means)[..., top : top + height, left : left + width]
    return bits / (height * width) + lmbda * 255**2 * F.mse_loss(x_hat, window.x)


def search(window: Window, gains, lmbda: float, iterations: int, generator: torch.Generator) -> None:
    """Adam steps on the window's SGA-rounded RD cost, in place, on the latents its masks let move.

    y is searched as y·g, whose steps are those of its symbols at every rate (Adam's steps have
    about the learning rate's size whatever the gradient's scale).

    Args:
        window: the latents to move (window.scaled_y and window.z change in place).
        gains: as for rd_cost.
        lmbda: λ at the rate position.
        iterations: the number of steps.
        generator: the search's generator.
    """
    variables = [window.scaled_y.requires_grad_(True), window.z.requires_grad_(True)]
    masks = [window.searched_y, window.searched_z]
    optimizer = torch.optim.Adam(variables, lr=LEARNING_RATE)
    for step in range(iterations):
        progress = step / max(1, iterations - 1)
        for group in optimizer.param_groups:
            group["lr"] = LEARNING_RATE * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        temperature = START_TEMPERATURE * (END_TEMPERATURE / START_TEMPERATURE) ** progress
        grads = torch.autograd.grad(rd_cost(window, gains, lmbda, temperature, generator), variables)
        for variable, grad, mask in zip(variables, grads, masks):
            variable.grad = grad if mask is None else grad.masked_fill(~mask, 0)  # Adam leaves alone what has no gradient
        optimizer.step()
    for variable in variables:
        variable.requires_grad_(False)


def refine(net, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, height: int, width: int, position: float,
           effort: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The searched latents of an image at `effort`, in one piece or tile by tile.

    Args:
        net: a variable-rate model (GainedMeanScaleHyperprior).
        x: (1, 3, H, W) float32 image in [0, 1], padded to the model's multiple.
        y: (1, M, H / 16, W / 16) float32, g_a(x).
        z: (1, C_z, H / 64, W / 64) float32, h_a(y).
        height, width: the image's true size, within the padding.
        position: the rate position.
        effort: the effort level, 1 to MAX_EFFORT.

    Returns:
        tuple: the searched (y, z), shaped as the inputs, float32 (not rounded).

    Raises:
        SearchError: on an image over SEARCH_WHOLE_PIXELS for a model without hyperprior blocks.
    """
    iterations = ITERATIONS[effort]
    generator = torch.Generator().manual_seed(0)
    stride, ratio = net.g_a_stride, net.z_stride // net.g_a_stride  # pixels a latent, latents a hyper-latent
    block = net.hyper_block
    with search_precision(net), torch.inference_mode(False), torch.no_grad():  # ordinary tensors, out of the caller's inference mode
        position_tensor = torch.tensor([float(position)])
        lmbda = float(net.lambdas(position_tensor))
        gain, inverse_gain = (net._interpolate(table.float(), position_tensor)[:, :, None, None] for table in net.gain_table)
        medians = net.entropy_bottleneck._get_medians().view(1, -1, 1, 1)
        gains = (gain, inverse_gain, medians)
        scaled_y, z, x = y * gain, z.clone(), x.clone()
        with torch.enable_grad():
            if x.shape[-2] * x.shape[-1] <= SEARCH_WHOLE_PIXELS:
                search(Window(net, scaled_y, z, x[..., :height, :width], (0, 0, height, width)), gains, lmbda, iterations, generator)
                return scaled_y / gain, z
            if not block:
                raise SearchError("effort above 0 on an image over half a megapixel needs a model whose hyperprior "
                                  "works in blocks; use effort 0")
            tile = math.ceil(SEARCH_TILE / block) * block  # whole blocks, and a ring of one block around
            rows, columns = y.shape[-2:]
            for top in range(0, rows, tile):
                for left in range(0, columns, tile):
                    bottom, right = min(top + tile, rows), min(left + tile, columns)
                    pixels = (min(bottom * stride, height) - top * stride, min(right * stride, width) - left * stride)
                    if min(pixels) <= 0:  # a tile of padding only
                        continue
                    t0, l0 = max(0, top - block), max(0, left - block)
                    t1, l1 = min(rows, bottom + block), min(columns, right + block)
                    searched_y = torch.zeros(t1 - t0, l1 - l0, dtype=torch.bool)
                    searched_y[top - t0 : bottom - t0, left - l0 : right - l0] = True
                    searched_z = searched_y[::ratio, ::ratio].clone()
                    window = Window(net, scaled_y[..., t0:t1, l0:l1].clone(), z[..., t0 // ratio : t1 // ratio, l0 // ratio : l1 // ratio].clone(),
                                    x[..., top * stride : top * stride + pixels[0], left * stride : left * stride + pixels[1]],
                                    ((top - t0) * stride, (left - l0) * stride, *pixels), searched_y, searched_z)
                    search(window, gains, lmbda, iterations, generator)
                    scaled_y[..., top:bottom, left:right] = window.scaled_y[..., top - t0 : bottom - t0, left - l0 : right - l0]
                    z[..., top // ratio : bottom // ratio, left // ratio : right // ratio] = window.z[
                        ..., (top - t0) // ratio : (bottom - t0) // ratio, (left - l0) // ratio : (right - l0) // ratio]
            return scaled_y / gain, z


def refined_streams(net, x: torch.Tensor, height: int, width: int, position: float, effort: int) -> list[bytes]:
    """The streams of an image at `effort` > 0: the searched latents', or effort 0's if cheaper.

    Each candidate's cost is its real bytes plus λ times the squared error of its decoded 8-bit
    pixels, so a searched file never costs more than the plain one.

    Args:
        net: a variable-rate model.
        x: (1, 3, H, W) float32 image in [0, 1], padded to the model's multiple.
        height, width: the image's true size.
        position: the rate position.
        effort: the effort level, 1 to MAX_EFFORT.

    Returns:
        list[bytes]: the streams, as net.compress_latents gives them.
    """
    y = net.coding_analysis(x)
    z = net.hyper_analysis(y)
    plain = net.compress_latents(y, z, position)
    searched = net.compress_latents(*refine(net, x, y, z, height, width, position, effort), position)
    lmbda = float(net.lambdas(torch.tensor([float(position)])))
    original = x[..., :height, :width].mul(255).round()

    def cost(streams: list[bytes]) -> float:
        decoded = net.decompress(streams, x.shape[-2], x.shape[-1], position)[..., :height, :width].mul(255).round()
        return 8 * sum(map(len, streams)) / (height * width) + lmbda * float(F.mse_loss(decoded, original))

    return searched if cost(searched) < cost(plain) else plain
