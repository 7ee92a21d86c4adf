"""A trained variable-rate model made wider: more channels in the latent y (M), starting out computing
exactly what the narrower model computed.

Each new channel is either
- *live*: produced from the old channels with the layer's own initialization, and read by the layers
  after it only through weights that start at zero, so that it changes nothing yet while its
  outgoing weights still get gradients; the hyperprior's new hidden channels are live;
- *silent*: produced through weights that start at zero, so it is exactly zero and read through
  freshly initialized weights, which then carry its gradient back; the new channels of y are silent,
  and so code as zeros (at the smallest scale and a zero mean the hyperprior predicts for them) until
  training gives them something to carry. Their rate gains start at the old channels' geometric mean
  at each anchor (docs/glossary.md).
The transforms' width N stays, and with it every GDN layer: wider transforms would widen z too, whose
new channels would code their zeros under an untrained factorized density, which costs real bits
(docs/training.md has the figure).
"""

from __future__ import annotations

import torch
from torch import nn

from codec.models.architectures import GainedMeanScaleHyperprior


def _widen_conv(old: nn.Module, new: nn.Module, new_inputs: str, new_outputs: str,
                output_rows: list[tuple[slice, slice]] | None = None) -> None:
    """Copy a (transposed) convolution's weights into its wider twin. `new_inputs` "live": the old
    outputs ignore them (zero weights); "silent": kept as initialized (they are zero). `new_outputs`
    "live": as initialized; "silent": zero weights and bias. `output_rows` maps old output rows to
    new ones ((old slice, new slice) pairs) where the outputs are laid out in groups."""
    transposed = isinstance(old, nn.ConvTranspose2d)
    weight = new.weight.detach()
    old_weight = old.weight.detach()
    if transposed:  # (in, out, k, k): handle as (out, in, k, k)
        weight, old_weight = weight.transpose(0, 1), old_weight.transpose(0, 1)
    old_out, old_in = old_weight.shape[:2]
    rows = output_rows or [(slice(0, old_out), slice(0, old_out))]
    live_rows = torch.ones(weight.shape[0], dtype=torch.bool)
    for old_rows, new_rows in rows:
        live_rows[new_rows] = False
    if new_outputs == "silent":
        weight[live_rows] = 0
        new.bias.detach()[live_rows] = 0
    for old_rows, new_rows in rows:
        weight[new_rows, :old_in] = old_weight[old_rows]
        if new_inputs == "live":
            weight[new_rows, old_in:] = 0
        new.bias.detach()[new_rows] = old.bias.detach()[old_rows]


def widened(model: GainedMeanScaleHyperprior, M: int) -> GainedMeanScaleHyperprior:
    """A copy of a variable-rate model with more latent channels, computing what it computed.

    The copy gives the same reconstruction and the same symbols for the old channels, and zeros for
    the new ones (see the module's docstring).

    Args:
        model: a GainedMeanScaleHyperprior without hyperprior blocks (not a subclass).
        M: the new number of channels of y, at least model.M.

    Returns:
        GainedMeanScaleHyperprior: a new model of width (model.N, M), with the same hyper_block.

    Raises:
        ValueError: for another class, a model with hyperprior blocks, or a smaller M.
    """
    if type(model) is not GainedMeanScaleHyperprior:
        raise ValueError(f"only a {GainedMeanScaleHyperprior.__name__} can be widened (got {type(model).__name__})")
    if model.hyper_attention != "none":
        raise ValueError("a model with hyperprior blocks cannot be widened")
    if M < model.M:
        raise ValueError(f"a model's latent can only be widened (M {model.M} -> {M})")
    wide = GainedMeanScaleHyperprior(model.N, M, hyper_block=model.hyper_block)
    with torch.no_grad():
        for name in ("g_a", "g_s", "h_a", "h_s"):
            old_layers, new_layers = getattr(model, name), getattr(wide, name)
            convolutions = [i for i, layer in enumerate(old_layers) if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d))]
            for i, layer in enumerate(old_layers):
                if hasattr(layer, "gamma"):  # GDN, of width N
                    new_layers[i].load_state_dict(layer.state_dict())
                elif i in convolutions:
                    first, last = i == convolutions[0], i == convolutions[-1]
                    reads_silent = first and name in ("g_s", "h_a", "h_s")  # y or z
                    new_inputs = "silent" if reads_silent else "live"
                    if name in ("g_a", "h_a") and last:  # y, z
                        _widen_conv(layer, new_layers[i], new_inputs, "silent")
                    elif name == "h_s" and last:  # y's scales and means: two groups of M
                        groups = [(slice(0, model.M), slice(0, model.M)), (slice(model.M, 2 * model.M), slice(M, M + model.M))]
                        _widen_conv(layer, new_layers[i], new_inputs, "silent", groups)
                    else:
                        _widen_conv(layer, new_layers[i], new_inputs, "live")
        wide_density = dict(wide.entropy_bottleneck.named_parameters())  # z's: the same channels
        for name, parameter in model.entropy_bottleneck.named_parameters():
            wide_density[name].copy_(parameter)
        for name in ("gain", "inverse_gain"):
            old, new = getattr(model, name).detach().abs(), getattr(wide, name).detach()
            new[:] = old.log().mean(dim=1, keepdim=True).exp()
            new[:, : model.M] = old
    return wide
