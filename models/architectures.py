"""The model ladder: factorized prior, scale hyperprior, mean-scale hyperprior, the gained
(variable-rate) mean-scale hyperprior, and that with a checkerboard context.

Each model is two things, kept apart:

- the paper's function, `forward`: float transforms (bfloat16 autocast with `training_in_bfloat16`),
  the same whatever the module's mode, except that CompressAI's entropy models add noise in training
  mode and round in eval mode;
- its coding, `compress(x, position=None)` and `decompress(strings, height, width, position=None)`,
  built from the `coding_*` methods: the transforms in their coding forms, tiled on large images
  (models/coding.py), and the hyperprior and context in integer-exact arithmetic (models/exact.py),
  so that encoder and decoder agree to the bit on every machine. `coding_estimate` is the forward
  pass with those forms: what validation scores.

`compress` takes an image tensor whose height and width are multiples of `downsampling` and returns
one byte string per entropy-coded stream, coded with CompressAI's rANS coder through its
EntropyBottleneck and GaussianConditional; `decompress` takes those strings and the image size back.
One-rate models refuse a rate position, variable-rate ones require one. Quality, rate position,
anchor and gain: docs/glossary.md.
"""

from __future__ import annotations

import functools
import math

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.models.utils import conv, deconv
from compressai.ops import quantize_ste
import torch.nn.functional as F
from torch import nn

from codec.models import coding
from codec.models.anchors import ANCHOR_COUNT, ANCHOR_RANGE
from codec.models.exact import exact_conv_at, exact_forward
from codec.models.layers import GDN, make_hyper_attention
from codec.models.tiling import blockwise


class AnalysisTransform(nn.Sequential):
    """g_a: four stride-2 5x5 convolutions with GDN between them (image -> latent y, 16x smaller)."""

    def __init__(self, N: int, M: int):
        super().__init__(conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


class SynthesisTransform(nn.Sequential):
    """g_s: four stride-2 5x5 transposed convolutions with inverse GDN between them (y_hat -> image)."""

    def __init__(self, N: int, M: int):
        super().__init__(
            deconv(M, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True),
            deconv(N, 3),
        )


class HyperAnalysis(nn.Sequential):
    """h_a: y -> z, 4x smaller, with the optional attention block after each activation."""

    def __init__(self, N: int, M: int, attention: str, activation: type[nn.Module] = nn.ReLU):
        super().__init__(
            conv(M, N, stride=1, kernel_size=3), activation(), make_hyper_attention(attention, N),
            conv(N, N), activation(), make_hyper_attention(attention, N),
            conv(N, N),
        )


HYPER_ATTENTION_PLACES = ("both", "h_a")


class ScaleHyperSynthesis(nn.Sequential):
    """h_s of the scale hyperprior: z_hat -> y's scales, 4x larger, which the last ReLU keeps non-negative."""

    def __init__(self, N: int, M: int, attention: str):
        super().__init__(
            deconv(N, N), nn.ReLU(), make_hyper_attention(attention, N),
            deconv(N, N), nn.ReLU(), make_hyper_attention(attention, N),
            conv(N, M, stride=1, kernel_size=3), nn.ReLU(),
        )


class MeanScaleHyperSynthesis(nn.Sequential):
    """h_s of the mean-scale hyperprior: z_hat -> y's scales and means (2M channels), through 1.5 M."""

    def __init__(self, N: int, M: int, attention: str):
        wide = M * 3 // 2
        super().__init__(
            deconv(N, M), nn.LeakyReLU(), make_hyper_attention(attention, M),
            deconv(M, wide), nn.LeakyReLU(), make_hyper_attention(attention, wide),
            conv(wide, 2 * M, stride=1, kernel_size=3),
        )


class FactorizedPrior(CompressionModel):
    """Ballé et al. 2017: y is coded with a learned factorized density (EntropyBottleneck).

    x → g_a → y → round → ŷ → g_s → x̂

    Args:
        N: channels of the transforms' hidden layers.
        M: channels of the latent y.
    """

    downsampling = 16
    g_a_stride = 16  # pixels per latent
    latent_names = ("y",)
    neutral_extensions: tuple[str, ...] = ()  # see CheckerboardGainedHyperprior
    # Training: g_s decodes round(y - m) + m (m: the median, or the predicted mean) through a
    # straight-through gradient, the latent it gets when coding, instead of y plus uniform noise;
    # the rate term keeps the noise.
    synthesis_sees_rounding = False
    # Training (and the encoder's search of the latents, models/refine.py): g_a and g_s run under
    # bfloat16 autocast when this is set; the hyperprior, the entropy models and the likelihoods
    # stay float32.
    training_in_bfloat16 = False

    def __init__(self, N: int = 128, M: int = 192):
        super().__init__()
        self.N, self.M = N, M
        self.g_a = AnalysisTransform(N, M)
        self.g_s = SynthesisTransform(N, M)
        self.entropy_bottleneck = EntropyBottleneck(M)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """g_a in float, under bfloat16 autocast with `training_in_bfloat16`.

        Args:
            x: (B, 3, H, W) float32 image in [0, 1], H and W multiples of `g_a_stride`.

        Returns:
            Tensor: y, (B, M, H/16, W/16) float32.
        """
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.training_in_bfloat16):
            return self.g_a(x).float()

    def synthesis(self, y_hat: torch.Tensor) -> torch.Tensor:
        """g_s in float, under bfloat16 autocast with `training_in_bfloat16`.

        Args:
            y_hat: (B, M, h, w) float32 latents.

        Returns:
            Tensor: x̂, (B, 3, 16h, 16w) float32, not clamped.
        """
        with torch.autocast(y_hat.device.type, dtype=torch.bfloat16, enabled=self.training_in_bfloat16):
            return self.g_s(y_hat).float()

    def coding_analysis(self, x: torch.Tensor) -> torch.Tensor:
        """g_a as coding runs it: its coding form, in tiles on large images (models/coding.py).

        Args:
            x: (1, 3, H, W) float32 image in [0, 1], H and W multiples of `g_a_stride`.

        Returns:
            Tensor: y, (1, M, H/16, W/16) float32.
        """
        return coding.tiled_analysis(self.g_a, x, self.g_a_stride)

    def coding_synthesis(self, y_hat: torch.Tensor) -> torch.Tensor:
        """g_s as coding runs it: its coding form, in tiles on large images (models/coding.py).

        Args:
            y_hat: (1, M, h, w) float32 decoded latents.

        Returns:
            Tensor: x̂, (1, 3, 16h, 16w) float32, not clamped.
        """
        return coding.tiled_synthesis(self.g_s, y_hat, self.g_a_stride)

    def forward(self, x: torch.Tensor) -> dict:
        """The paper's function: reconstruction and likelihoods, for the rate-distortion loss.

        Args:
            x: (B, 3, H, W) float32 image in [0, 1], H and W multiples of `downsampling`.

        Returns:
            dict: "x_hat", (B, 3, H, W) float32, not clamped; "likelihoods", a dict of float32
            tensors shaped like each latent ("y", and "z" for a hyperprior).
        """
        return self._estimate(x, None, coded=False)

    def coding_estimate(self, x: torch.Tensor, position: torch.Tensor | None = None) -> dict:
        """`forward` with the coding forms (`coding_*`): the reconstruction and likelihoods that
        coding gives, which validation scores. Call it in eval mode for rounded latents.

        Args:
            x: (B, 3, H, W) float32 image in [0, 1], H and W multiples of `downsampling`.
            position: (B,) float32 rate positions for a variable-rate model; None for a one-rate one.

        Returns:
            dict: as `forward`.
        """
        return self._estimate(x, position, coded=True)

    def _estimate(self, x: torch.Tensor, position: torch.Tensor | None, coded: bool) -> dict:
        """The forward pass in the float forms or, `coded`, in the coding forms."""
        _one_rate(position)
        y = (self.coding_analysis if coded else self.analysis)(x)
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        if self.training and self.synthesis_sees_rounding:
            medians = self.entropy_bottleneck._get_medians().detach()
            y_hat = quantize_ste(y - medians) + medians
        return {"x_hat": (self.coding_synthesis if coded else self.synthesis)(y_hat), "likelihoods": {"y": y_likelihoods}}

    def compress(self, x: torch.Tensor, position: float | None = None) -> list[bytes]:
        """Code an image.

        Args:
            x: (1, 3, H, W) float32 image in [0, 1], H and W multiples of `downsampling`.
            position: None; a one-rate model refuses a rate position (ValueError).

        Returns:
            list[bytes]: one string per stream, in the order of `latent_names`.
        """
        _one_rate(position)
        y = self.coding_analysis(x)
        return [self.entropy_bottleneck.compress(y)[0]]

    def decompress(self, strings: list[bytes], height: int, width: int, position: float | None = None) -> torch.Tensor:
        """Decode an image.

        Args:
            strings: the streams `compress` gave (a damaged one decodes to some image, safely).
            height, width: the coded (padded) image size, multiples of `downsampling`.
            position: None; a one-rate model refuses a rate position (ValueError).

        Returns:
            Tensor: (1, 3, height, width) float32 in [0, 1].
        """
        _one_rate(position)
        shape = (height // self.g_a_stride, width // self.g_a_stride)
        y_hat = self.entropy_bottleneck.decompress([coding.bounded(strings[0], self.M * shape[0] * shape[1])], shape)
        return self.coding_synthesis(y_hat).clamp_(0, 1)


def _one_rate(position) -> None:
    """Refuse a rate position: a one-rate model codes at the rate it was trained for."""
    if position is not None:
        raise ValueError(f"a one-rate model codes at one rate: it takes no rate position (got {position})")


class ScaleHyperprior(FactorizedPrior):
    """Ballé et al. 2018: a hyperprior z describes the scale of each element of y, coded with a
    zero-mean Gaussian (GaussianConditional); z itself goes through the EntropyBottleneck.

    With `hyper_block` b, h_a and h_s work on each b x b block of y (16b pixels a side) on its own,
    as they see it when trained on crops of that size; 0: on the whole image. Trained on 64² crops,
    a hyperprior never learns to combine neighbouring hyper-latents, and on whole images it then
    spends several times the bits (docs/training.md, benchmarks/crop_generalization.py), so such models code
    in blocks.

    x → g_a → y → round → ŷ → g_s → x̂, with y → h_a → z → round → ẑ → h_s → σ (y's scales)

    Args:
        N: channels of the transforms' hidden layers and of z.
        M: channels of the latent y.
        hyper_attention: the attention block in h_a and h_s (models/layers.py), or "none".
        hyper_block: the side b of the blocks of y the hyperprior works on, a multiple of 4; 0: the
            whole image.
        hyper_attention_in: "both", or "h_a" for the block in h_a alone (decoding stays exact).
    """

    latent_names = ("y", "z")
    z_stride = 64  # pixels per hyper-latent

    def __init__(self, N: int = 128, M: int = 192, hyper_attention: str = "none", hyper_block: int = 0,
                 hyper_attention_in: str = "both"):
        super().__init__(N, M)
        if hyper_block < 0 or hyper_block % 4:
            raise ValueError(f"hyper_block must be 0 or a positive multiple of 4 (got {hyper_block})")
        if hyper_attention_in not in HYPER_ATTENTION_PLACES:
            raise ValueError(f"hyper_attention_in must be one of {', '.join(HYPER_ATTENTION_PLACES)} (got {hyper_attention_in!r})")
        self.hyper_attention = hyper_attention
        self.hyper_attention_in = hyper_attention_in
        self.hyper_block = hyper_block
        self.downsampling = 16 * hyper_block if hyper_block else 64
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.h_a = HyperAnalysis(N, M, hyper_attention)
        self.h_s = ScaleHyperSynthesis(N, M, self.synthesis_attention)

    @property
    def synthesis_attention(self) -> str:
        """The block h_s carries: the model's, unless it is in h_a alone ("h_a": only the encoder runs
        it, so decoding stays exact, see models/exact.py)."""
        return self.hyper_attention if self.hyper_attention_in == "both" else "none"

    def hyper_input(self, y: torch.Tensor) -> torch.Tensor:
        """What h_a sees of y: |y| for a scale-only hyperprior."""
        return torch.abs(y)

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        """h_a, on the whole of y or block by block; float32, for training and coding alike.

        Args:
            y: (B, M, h, w) float32 latents.

        Returns:
            Tensor: z, (B, N, h/4, w/4) float32.
        """
        if not self.hyper_block:
            return self.h_a(self.hyper_input(y))
        return blockwise(self.h_a, self.hyper_input(y), self.hyper_block, self.hyper_block // 4, coding.HYPER_CHUNK)

    def hyper_synthesis(self, z_hat: torch.Tensor) -> torch.Tensor:
        """h_s in float, on the whole of ẑ or block by block.

        Args:
            z_hat: (B, N, h, w) float32 hyper-latents.

        Returns:
            Tensor: (B, M, 4h, 4w) float32 scales, or (B, 2M, 4h, 4w) scales then means.
        """
        if self.hyper_block:
            return blockwise(self.h_s, z_hat, self.hyper_block // 4, self.hyper_block, coding.HYPER_CHUNK)
        return self.h_s(z_hat)

    def coding_hyper_synthesis(self, z_hat: torch.Tensor) -> torch.Tensor:
        """h_s in its integer-exact form (models/exact.py), so that encoder and decoder agree to the
        bit on every machine: in tiles on the whole image (models/coding.py) or in chunks of blocks;
        attention blocks, whose pooling is global, run in one piece unless the hyperprior works in
        blocks.

        Args:
            z_hat: (B, N, h, w) float32 decoded hyper-latents.

        Returns:
            Tensor: as `hyper_synthesis`, float32 multiples of 2^-12.
        """
        exact_h_s = functools.partial(exact_forward, self.h_s)
        if self.hyper_block:
            return blockwise(exact_h_s, z_hat, self.hyper_block // 4, self.hyper_block, coding.HYPER_CHUNK)
        if self.synthesis_attention != "none":
            return exact_h_s(z_hat)
        return coding.tiled_hyper_synthesis(exact_h_s, z_hat, self.g_a_stride, self.z_stride)

    def scales_and_means(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """h_s's output as (scales, means); a scale hyperprior predicts no means (None)."""
        return params, None

    def gaussian_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(scales, means) of y's Gaussian given the hyper-latent, through the float h_s.

        Args:
            z_hat: (B, N, h, w) float32 hyper-latents.

        Returns:
            tuple: scales (B, M, 4h, 4w) float32 and means (the same, or None).
        """
        return self.scales_and_means(self.hyper_synthesis(z_hat))

    def coding_gaussian_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`gaussian_params` through the integer-exact h_s (`coding_hyper_synthesis`)."""
        return self.scales_and_means(self.coding_hyper_synthesis(z_hat))

    def scale_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """The CDF of each symbol: the number of scale-table entries (bar the last) below its scale.
        The same integers as GaussianConditional.build_indexes, in one pass instead of 63; float64
        scales (the variable-rate model's products) are compared in float64."""
        return torch.bucketize(scales, self.gaussian_conditional.scale_table[:-1].to(scales.dtype)).int()

    def _estimate(self, x: torch.Tensor, position: torch.Tensor | None, coded: bool) -> dict:
        _one_rate(position)
        y = (self.coding_analysis if coded else self.analysis)(x)
        z = self.hyper_analysis(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = (self.coding_gaussian_params if coded else self.gaussian_params)(z_hat)
        y_hat, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        if self.training and self.synthesis_sees_rounding:
            y_hat = quantize_ste(y) if means is None else quantize_ste(y - means) + means
        x_hat = (self.coding_synthesis if coded else self.synthesis)(y_hat)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress(self, x: torch.Tensor, position: float | None = None) -> list[bytes]:
        _one_rate(position)
        y = self.coding_analysis(x)
        del x  # a caller that passes a temporary frees the image here
        z = self.hyper_analysis(y)
        z_string = self.code_z(z)
        scales, means = self.coding_gaussian_params(self.decode_z(z_string, z.shape[-2:]))
        indexes = self.scale_indexes(scales)
        y_string = coding.encode_symbols(self.gaussian_conditional, self.gaussian_conditional.quantize(y, "symbols", means), indexes)
        return [y_string, z_string]

    def decompress(self, strings: list[bytes], height: int, width: int, position: float | None = None) -> torch.Tensor:
        _one_rate(position)
        z_hat = self.decode_z(strings[1], (height // self.z_stride, width // self.z_stride))
        return self.coding_synthesis(self.decode_y(strings[0], z_hat)).clamp_(0, 1)

    def code_z(self, z: torch.Tensor) -> bytes:
        """z's stream (one image), through the EntropyBottleneck."""
        return self.entropy_bottleneck.compress(z)[0]

    def decode_z(self, string: bytes, shape: tuple[int, int]) -> torch.Tensor:
        """z_hat from its stream, made safe against a damaged one (see coding.bounded)."""
        return self.entropy_bottleneck.decompress([coding.bounded(string, self.N * shape[0] * shape[1])], shape)

    def decode_y(self, string: bytes, z_hat: torch.Tensor) -> torch.Tensor:
        """ŷ from its stream and the decoded hyper-latent; the scales, means and indexes are freed
        on return, before the synthesis, which then has their memory."""
        scales, means = self.coding_gaussian_params(z_hat)
        indexes = self.scale_indexes(scales)
        symbols = coding.decode_symbols(self.gaussian_conditional, coding.bounded(string, indexes.numel()), indexes)
        return self.gaussian_conditional.dequantize(symbols, means)


class MeanScaleHyperprior(ScaleHyperprior):
    """Minnen et al. 2018 without the context model: the hyperprior predicts a mean and a scale
    for each element of y.

    x → g_a → y → round(y − μ) + μ → ŷ → g_s → x̂, with y → h_a → z → round → ẑ → h_s → (σ, μ)

    Args: as ScaleHyperprior.
    """

    def __init__(self, N: int = 128, M: int = 192, hyper_attention: str = "none", hyper_block: int = 0,
                 hyper_attention_in: str = "both"):
        super().__init__(N, M, hyper_attention, hyper_block, hyper_attention_in)
        self.h_a = HyperAnalysis(N, M, hyper_attention, nn.LeakyReLU)
        self.h_s = MeanScaleHyperSynthesis(N, M, self.synthesis_attention)

    def hyper_input(self, y: torch.Tensor) -> torch.Tensor:
        """What h_a sees of y: y itself, signs included, for it predicts means too."""
        return y

    def scales_and_means(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h_s's 2M channels as (scales, means), M each."""
        scales, means = params.chunk(2, dim=1)
        return scales, means


def dequantized(symbols: torch.Tensor, inverse_gain: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """y_hat = symbols * g' + mean as coding computes it: the product of exact numbers in float64,
    then the mean added in float32, the same on every machine."""
    return (symbols.double() * inverse_gain).float().add_(means)


class GainedMeanScaleHyperprior(MeanScaleHyperprior):
    """One mean-scale hyperprior for every rate: a gain and an inverse-gain vector per channel of y at
    each of a few anchor rate-distortion trade-offs, after Cui et al. 2021 ("Asymmetric Gained Deep
    Image Compression With Continuous Rate Adaptation"). Rate position, anchor and gain:
    docs/glossary.md.

    At rate position p the symbols are round((y − μ) × g(p)), coded with the scale σ × g(p), and
    decoded as symbols × g′(p) + μ; the transforms and the hyperprior are shared by all rates, so
    every step of training improves the whole curve. Coding takes the gains from `gain_table`, fixed
    by `update()` and kept in float64: the decoder's scales are products of exact numbers, the same
    on every machine.

        x → g_a → y → (y − μ) × g(p) → round → symbols → × g′(p) + μ → ŷ → g_s → x̂
                  y → h_a → z → round → ẑ → h_s → (σ, μ);  symbols coded with σ × g(p)

    Args: as ScaleHyperprior.
    """

    # The trade-offs lambda (MSE on 0-255) the anchors are trained at, log-spaced.
    anchor_lambdas = tuple(float(v) for v in torch.logspace(*map(math.log10, ANCHOR_RANGE), ANCHOR_COUNT, dtype=torch.float64))

    def __init__(self, N: int = 128, M: int = 192, hyper_attention: str = "none", hyper_block: int = 0,
                 hyper_attention_in: str = "both"):
        super().__init__(N, M, hyper_attention, hyper_block, hyper_attention_in)
        self.gain = nn.Parameter(self.initial_gains(math.sqrt(self.anchor_lambdas[0] * self.anchor_lambdas[-1])))
        self.inverse_gain = nn.Parameter(1 / self.gain.detach().clone())
        self.register_buffer("gain_table", torch.ones(2, len(self.anchor_lambdas), M, dtype=torch.float64))

    @property
    def anchors(self) -> int:
        return len(self.anchor_lambdas)

    def initial_gains(self, lmbda: float) -> torch.Tensor:
        """Gains for a model whose transforms were trained at `lmbda`: (anchor / lmbda)^0.56 for
        every channel, so that each anchor starts near the rate of a one-rate model trained at its
        λ (where the exponent comes from: docs/training.md).

        Returns:
            Tensor: (anchors, M) float32.
        """
        ratios = torch.tensor(self.anchor_lambdas, dtype=torch.float32) / lmbda
        return ratios.pow(0.56)[:, None].repeat(1, self.M)

    def lambdas(self, position: torch.Tensor) -> torch.Tensor:
        """The trade-off at each position, interpolated log-linearly between the anchors.

        Args:
            position: (B,) float rate positions.

        Returns:
            Tensor: (B,) float32 λ (MSE on 0-255).
        """
        logs = torch.tensor(self.anchor_lambdas, dtype=torch.float32, device=position.device).log()[:, None]
        return self._interpolate(logs, position)[:, 0].exp()

    @staticmethod
    def _interpolate(table: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Rows of `table` (anchors x M) at each position (B,), linearly between anchors: (B, M)."""
        low = position.floor().clamp(max=table.shape[0] - 2).long()
        t = (position - low).to(table.dtype)[:, None]
        return (1 - t) * table[low] + t * table[low + 1]

    def check_position(self, position: float | None) -> float:
        """The rate position, if it is one: a number from 0 to anchors - 1 (ValueError otherwise)."""
        if position is None:
            raise ValueError("a variable-rate model codes at a rate position: give one")
        if not 0 <= position <= self.anchors - 1:
            raise ValueError(f"rate position must be in [0, {self.anchors - 1}] (got {position})")
        return position

    def forward(self, x: torch.Tensor, position: torch.Tensor | None = None) -> dict:
        """The paper's function at one rate position per image.

        Args:
            x: (B, 3, H, W) float32 image in [0, 1], H and W multiples of `downsampling`.
            position: (B,) float rate positions, the trained gains interpolated between anchors;
                None: the middle anchor.

        Returns:
            dict: as FactorizedPrior.forward.
        """
        return self._estimate(x, position, coded=False)

    def _estimate(self, x: torch.Tensor, position: torch.Tensor | None, coded: bool) -> dict:
        if position is None:
            position = torch.full((x.shape[0],), (self.anchors - 1) / 2, device=x.device)
        gain = self._interpolate(self.gain.abs(), position)[:, :, None, None]
        inverse_gain = self._interpolate(self.inverse_gain.abs(), position)[:, :, None, None]
        y = (self.coding_analysis if coded else self.analysis)(x)
        z = self.hyper_analysis(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self.latent_params(y, z_hat, gain, inverse_gain, coded)
        centred = (y - means) * gain
        symbols, y_likelihoods = self.gaussian_conditional(centred, scales * gain)
        if self.training and self.synthesis_sees_rounding:
            symbols = quantize_ste(centred)
        y_hat = symbols * inverse_gain + means
        x_hat = (self.coding_synthesis if coded else self.synthesis)(y_hat)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def latent_params(self, y: torch.Tensor, z_hat: torch.Tensor, gain: torch.Tensor, inverse_gain: torch.Tensor,
                      coded: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) of y in the forward pass: the hyperprior's, through the float h_s or,
        `coded`, the exact one."""
        return (self.coding_gaussian_params if coded else self.gaussian_params)(z_hat)

    def coding_gains(self, position: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(g, g') at a position, float64, shaped to multiply y (1, M, 1, 1)."""
        position = torch.tensor([self.check_position(position)], dtype=torch.float64)
        gain, inverse_gain = (self._interpolate(table, position).view(1, -1, 1, 1) for table in self.gain_table)
        return gain, inverse_gain

    def compress(self, x: torch.Tensor, position: float | None = None) -> list[bytes]:
        """Code an image at a rate position.

        Args:
            x: (1, 3, H, W) float32 image in [0, 1], H and W multiples of `downsampling`.
            position: the rate position, 0 to anchors - 1 (ValueError if None or outside).

        Returns:
            list[bytes]: one string per stream, in the order of `latent_names`.
        """
        self.check_position(position)
        y = self.coding_analysis(x)
        del x
        return self.compress_latents(y, self.hyper_analysis(y), position)

    def compress_latents(self, y: torch.Tensor, z: torch.Tensor, position: float) -> list[bytes]:
        """The streams of given latents: those of g_a and h_a, or ones refined for the image
        (models/refine.py); the decoder cannot tell.

        Args:
            y: (1, M, h, w) float32 latents.
            z: (1, N, h/4, w/4) float32 hyper-latents.
            position: the rate position.

        Returns:
            list[bytes]: as `compress`.
        """
        gain, _ = self.coding_gains(position)
        z_string = self.code_z(z)
        scales, means = self.coding_gaussian_params(self.decode_z(z_string, z.shape[-2:]))
        indexes = self.scale_indexes(scales.double() * gain)
        symbols = torch.round((y.double() - means) * gain)
        return [coding.encode_symbols(self.gaussian_conditional, symbols, indexes), z_string]

    def decompress(self, strings: list[bytes], height: int, width: int, position: float | None = None) -> torch.Tensor:
        """Decode an image coded at a rate position.

        Args:
            strings: the streams `compress` gave (a damaged one decodes to some image, safely).
            height, width: the coded (padded) image size, multiples of `downsampling`.
            position: the rate position it was coded at (ValueError if None).

        Returns:
            Tensor: (1, 3, height, width) float32 in [0, 1].
        """
        gain, inverse_gain = self.coding_gains(position)
        z_hat = self.decode_z(strings[1], (height // self.z_stride, width // self.z_stride))
        scales, means = self.coding_gaussian_params(z_hat)
        indexes = self.scale_indexes(scales.double() * gain)
        del scales
        symbols = coding.decode_symbols(self.gaussian_conditional, coding.bounded(strings[0], indexes.numel()), indexes)
        del indexes
        y_hat = dequantized(symbols, inverse_gain, means)
        del means, symbols
        return self.coding_synthesis(y_hat).clamp_(0, 1)

    def update(self, force: bool = False) -> bool:
        """The CDF tables, and the coding gains from the trained ones."""
        self.gain_table.copy_(torch.stack([self.gain.detach().abs(), self.inverse_gain.detach().abs()]).double())
        return super().update(force=force)


def anchor_mask(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """The checkerboard's anchors, the latents whose row plus column is even: (height, width) bool."""
    rows, columns = torch.arange(height, device=device)[:, None], torch.arange(width, device=device)
    return (rows + columns) % 2 == 0


class CheckerboardContext(nn.Module):
    """A 5x5 convolution over the decoded anchors around each latent that is not one: of its 25 taps
    only the 12 that fall on anchors there (row plus column offset odd) are weights; the others
    would only ever see zeros."""

    kernel_size = 5
    taps = torch.tensor([5 * (2 + i) + 2 + j for i in range(-2, 3) for j in range(-2, 3) if (i + j) % 2])

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, len(self.taps)))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's initialization, over these taps

    def kernel(self) -> torch.Tensor:
        """The full 5x5 kernel, zero at the taps that are not weights."""
        out_channels, in_channels, _ = self.weight.shape
        kernel = self.weight.new_zeros(out_channels, in_channels, self.kernel_size**2)
        kernel[:, :, self.taps] = self.weight
        return kernel.view(out_channels, in_channels, self.kernel_size, self.kernel_size)

    def forward(self, anchors_hat: torch.Tensor) -> torch.Tensor:
        return F.conv2d(anchors_hat, self.kernel(), self.bias, padding=self.kernel_size // 2)


class EntropyParameters(nn.Sequential):
    """1x1 convolutions from the hyperprior's scales and means and the context (4M channels) to a
    correction of the scales and means (2M). The last layer starts at zero: a model starts out coding
    as its hyperprior alone does, so that it can start from one trained without a context."""

    def __init__(self, M: int):
        super().__init__(
            nn.Conv2d(4 * M, 8 * M // 3, 1), nn.LeakyReLU(),
            nn.Conv2d(8 * M // 3, 2 * M, 1), nn.LeakyReLU(),
            nn.Conv2d(2 * M, 2 * M, 1),
        )
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)


class CheckerboardGainedHyperprior(GainedMeanScaleHyperprior):
    """The variable-rate mean-scale hyperprior with a checkerboard context (He et al. 2021,
    "Checkerboard Context Model for Efficient Learned Image Compression").

    Half of y, the anchors (see anchor_mask), is coded first with the hyperprior's scales and means;
    the other half then with those corrected from a 5x5 convolution over the decoded anchors around
    it (EntropyParameters). Decoding takes two passes instead of one position at a time, and each
    pass is a stream of its own: y's anchors, the rest of y, then z. Like h_s, the context runs in
    its integer-exact form when coding (models/exact.py), so the second pass's CDFs are the same on
    every machine. The encoder's search (models/refine.py) prices y with the hyperprior alone; the
    real bytes then choose between its latents and g_a's. Anchor (here a checkerboard position, not
    a rate anchor) and gain: docs/glossary.md.

        x → g_a → y → (y − μ) × g(p) → round → symbols → × g′(p) + μ → ŷ → g_s → x̂
                  y → h_a → z → round → ẑ → h_s → (σ, μ)
        anchors:  symbols coded with (σ, μ) from h_s
        the rest: (σ, μ) + entropy_parameters(σ, μ, context(ŷ at the anchors))

    Args: as ScaleHyperprior.
    """

    latent_names = ("y anchors", "y rest", "z")
    # Weights that a model started from (codec.training.start.load_init) may lack: they start neutral.
    neutral_extensions = ("context.", "entropy_parameters.")

    def __init__(self, N: int = 128, M: int = 192, hyper_attention: str = "none", hyper_block: int = 0,
                 hyper_attention_in: str = "both"):
        super().__init__(N, M, hyper_attention, hyper_block, hyper_attention_in)
        self.context = CheckerboardContext(M, 2 * M)
        self.entropy_parameters = EntropyParameters(M)

    def contextual_params(self, hyper: torch.Tensor, anchors_hat: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """The scales and means of every latent, in float: the hyperprior's at the anchors,
        corrected from the decoded anchors around them at the others.

        Args:
            hyper: (B, 2M, h, w) float32, h_s's scales then means.
            anchors_hat: (B, M, h, w) float32 decoded anchors, zero elsewhere.
            anchors: (h, w) bool, anchor_mask.

        Returns:
            Tensor: (B, 2M, h, w) float32 scales then means.
        """
        delta = self.entropy_parameters(torch.cat([hyper, self.context(anchors_hat)], dim=1))
        return hyper + delta * ~anchors

    def coding_contextual_params(self, hyper: torch.Tensor, anchors_hat: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """`contextual_params` in the integer-exact form (`exact_correction`), in tiles on large
        images (models/coding.py)."""
        delta = coding.tiled_context(self.exact_correction, torch.cat([anchors_hat, hyper], dim=1))
        return hyper + delta * ~anchors

    def exact_correction(self, h: torch.Tensor) -> torch.Tensor:
        """The context's correction in its integer-exact form, at the latents that are not anchors.

        Computed there alone; every tensor it makes lives on h's device.

        Args:
            h: (B, 3M, h, w) float32: the decoded anchors (M channels), then the hyperprior's scales
                and means (2M), of a piece of the image that starts on an anchor.

        Returns:
            Tensor: (B, 2M, h, w) float32 correction of the scales and means, zero at the anchors.
        """
        n, _, height, width = h.shape
        positions = (~anchor_mask(height, width, device=h.device)).flatten().nonzero().squeeze(1)
        context = exact_conv_at(self.context, h[:, : self.M], positions)
        hyper = h[:, self.M :].flatten(2)[..., positions]
        correction = exact_forward(self.entropy_parameters, torch.cat([hyper, context], dim=1)[..., None])[..., 0]
        delta = correction.new_zeros(n, 2 * self.M, height * width)
        delta[..., positions] = correction
        return delta.view(n, 2 * self.M, height, width)

    def latent_params(self, y: torch.Tensor, z_hat: torch.Tensor, gain: torch.Tensor, inverse_gain: torch.Tensor,
                      coded: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) of y in the forward pass, with the anchors' rounded latents as the others'
        context (straight-through, so that in training the context sees what the decoder will)."""
        hyper = (self.coding_hyper_synthesis if coded else self.hyper_synthesis)(z_hat)
        anchors = anchor_mask(*y.shape[-2:], device=y.device)
        means = hyper[:, self.M :]
        anchors_hat = (quantize_ste((y - means) * gain) * inverse_gain + means) * anchors
        contextual_params = self.coding_contextual_params if coded else self.contextual_params
        return contextual_params(hyper, anchors_hat, anchors).chunk(2, dim=1)

    def compress_latents(self, y: torch.Tensor, z: torch.Tensor, position: float) -> list[bytes]:
        gain, inverse_gain = self.coding_gains(position)
        z_string = self.code_z(z)
        hyper = self.coding_hyper_synthesis(self.decode_z(z_string, z.shape[-2:]))
        anchors = anchor_mask(*y.shape[-2:])

        def code(params: torch.Tensor, part: torch.Tensor) -> tuple[bytes, torch.Tensor, torch.Tensor]:
            scales, means = params.chunk(2, dim=1)
            symbols = torch.round((y.double() - means) * gain)
            indexes = self.scale_indexes(scales.double() * gain)
            return coding.encode_symbols(self.gaussian_conditional, symbols[..., part], indexes[..., part]), symbols, means

        anchor_string, symbols, means = code(hyper, anchors)
        anchors_hat = dequantized(symbols, inverse_gain, means) * anchors  # as the decoder will have them
        rest_string, _, _ = code(self.coding_contextual_params(hyper, anchors_hat, anchors), ~anchors)
        return [anchor_string, rest_string, z_string]

    def decompress(self, strings: list[bytes], height: int, width: int, position: float | None = None) -> torch.Tensor:
        gain, inverse_gain = self.coding_gains(position)
        z_hat = self.decode_z(strings[2], (height // self.z_stride, width // self.z_stride))
        hyper = self.coding_hyper_synthesis(z_hat)
        del z_hat
        anchors = anchor_mask(height // self.g_a_stride, width // self.g_a_stride)
        symbols = torch.zeros(1, self.M, *anchors.shape, dtype=torch.int32)

        def decode(string: bytes, params: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
            """Decode one pass's symbols into place; returns the means."""
            scales, means = params.chunk(2, dim=1)
            indexes = self.scale_indexes(scales.double() * gain)[..., part]
            symbols[..., part] = coding.decode_symbols(self.gaussian_conditional, coding.bounded(string, indexes.numel()), indexes)
            return means

        means = decode(strings[0], hyper, anchors)
        anchors_hat = dequantized(symbols, inverse_gain, means) * anchors
        means = decode(strings[1], self.coding_contextual_params(hyper, anchors_hat, anchors), ~anchors)  # the anchors' as before
        del hyper, anchors_hat
        return self.coding_synthesis(dequantized(symbols, inverse_gain, means)).clamp_(0, 1)


ARCHITECTURES = {
    "factorized": FactorizedPrior,
    "scale-hyperprior": ScaleHyperprior,
    "mean-scale-hyperprior": MeanScaleHyperprior,
    "gained-mean-scale-hyperprior": GainedMeanScaleHyperprior,
    "gained-checkerboard-hyperprior": CheckerboardGainedHyperprior,
}


def extends(arch: str, source_arch: str) -> bool:
    """Whether a variable-rate `arch` can start from a trained model of `source_arch`: the same
    transforms and hyperprior, plus gains or a context that start from it (codec.training.start.load_init)."""
    model, source = ARCHITECTURES[arch], ARCHITECTURES[source_arch]
    return is_variable_rate(arch) and issubclass(model, source) and issubclass(source, MeanScaleHyperprior)


def is_variable_rate(arch: str) -> bool:
    """Whether an architecture codes at a rate chosen per image (a quality) rather than at one."""
    return issubclass(ARCHITECTURES[arch], GainedMeanScaleHyperprior)


def build_model(arch: str, **config) -> FactorizedPrior:
    """Instantiate an architecture by its registry name with its config (N, M, hyper_attention)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**config)
