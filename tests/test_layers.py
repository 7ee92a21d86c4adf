"""Each block against a straightforward float64 computation of its seed's formula."""

import numpy as np
import pytest
import torch

from codec.models.layers import (
    GDN,
    GatedChannelTransform,
    GlobalContext,
    GlobalResponseNorm,
    SpatialGroupEnhance,
    make_hyper_attention,
)

PEDESTAL = (2**-18) ** 2


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator, dtype=parameter.dtype) * 0.8 + 0.1)
    return module


def random_input(shape=(2, 16, 7, 9), seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# --- GDN -------------------------------------------------------------------------------------------

def effective_gdn_params(layer):
    """The seed's reparametrization: value = max(raw, bound)^2 - pedestal."""
    beta_bound = (1e-6 + PEDESTAL) ** 0.5
    gamma_bound = PEDESTAL**0.5
    beta = np.maximum(layer.beta.detach().numpy(), beta_bound) ** 2 - PEDESTAL
    gamma = np.maximum(layer.gamma.detach().numpy(), gamma_bound) ** 2 - PEDESTAL
    return beta, gamma


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_matches_formula(inverse):
    layer = randomize(GDN(16, inverse=inverse)).double()
    x = random_input()
    beta, gamma = effective_gdn_params(layer)
    xs = x.numpy()
    # norm_i = sqrt(beta_i + sum_j gamma_ij x_j^2), per pixel
    norm = np.sqrt(beta[None, :, None, None] + np.einsum("ij,njhw->nihw", gamma, xs**2))
    expected = xs * norm if inverse else xs / norm
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_gdn_at_init_is_divisive_with_gamma_init_diagonal():
    layer = GDN(4).double()
    x = random_input((1, 4, 3, 3))
    expected = x / torch.sqrt(1.0 + 0.1 * x**2)
    torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sign, passes", [(1.0, True), (-1.0, False)])
def test_gdn_lower_bound_gradient(sign, passes):
    """Below its bound a parameter gets a gradient only when the gradient would push it up."""
    layer = GDN(4).double()
    with torch.no_grad():
        layer.beta[0] = 0.0  # below the bound sqrt(1e-6 + pedestal)
    x = random_input((1, 4, 3, 3)).abs() + 0.1
    (sign * layer(x).sum()).backward()  # d sum(y)/d beta < 0: descent raises beta when sign = +1
    assert (layer.beta.grad[0] != 0).item() is passes
    assert torch.all(layer.beta.grad[1:] != 0)


# --- GRN -------------------------------------------------------------------------------------------

def test_grn_matches_formula():
    block = randomize(GlobalResponseNorm(16))
    x = random_input()
    xs = x.numpy()
    gx = np.sqrt((xs**2).sum(axis=(2, 3), keepdims=True))
    nx = gx / (gx.mean(axis=1, keepdims=True) + 1e-6)
    weight = block.weight.detach().numpy()
    bias = block.bias.detach().numpy()
    expected = weight * (xs * nx) + bias + xs
    np.testing.assert_allclose(block(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_grn_identity_at_init():
    x = random_input()
    torch.testing.assert_close(GlobalResponseNorm(16)(x), x, rtol=0, atol=0)


# --- GCT -------------------------------------------------------------------------------------------

def test_gct_matches_formula():
    block = randomize(GatedChannelTransform(16))
    x = random_input()
    xs = x.numpy()
    alpha, gamma, beta = (p.detach().numpy() for p in (block.alpha, block.gamma, block.beta))
    eps = 1e-5
    embedding = alpha * np.sqrt((xs**2).sum(axis=(2, 3), keepdims=True) + eps)
    norm = gamma / np.sqrt((embedding**2).mean(axis=1, keepdims=True) + eps)
    expected = xs * (1 + np.tanh(embedding * norm + beta))
    np.testing.assert_allclose(block(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_gct_identity_at_init():
    x = random_input()
    torch.testing.assert_close(GatedChannelTransform(16)(x), x, rtol=0, atol=0)


# --- SGE -------------------------------------------------------------------------------------------

def test_sge_matches_formula():
    groups = 4
    block = randomize(SpatialGroupEnhance(16, groups=groups))
    x = random_input()
    xs = x.numpy()
    n, c, h, w = xs.shape
    expected = np.empty_like(xs)
    weight, bias = block.weight.detach().numpy().ravel(), block.bias.detach().numpy().ravel()
    size = c // groups
    for i in range(n):
        for g in range(groups):
            features = xs[i, g * size : (g + 1) * size]  # (size, h, w)
            mean_feature = features.mean(axis=(1, 2))
            similarity = np.einsum("chw,c->hw", features, mean_feature)
            standard = (similarity - similarity.mean()) / (similarity.std(ddof=1) + 1e-5)
            gate = 1 / (1 + np.exp(-(standard * weight[g] + bias[g])))
            expected[i, g * size : (g + 1) * size] = features * gate
    np.testing.assert_allclose(block(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_sge_at_init_halves():
    """Zero weight and bias make every gate sigmoid(0) = 1/2, as in the seed."""
    x = random_input()
    torch.testing.assert_close(SpatialGroupEnhance(16)(x), x / 2)


# --- GC --------------------------------------------------------------------------------------------

def reference_mlp(mlp, context):
    fc1, norm, _, fc2 = mlp
    hidden = np.einsum("oc,nc->no", fc1.weight.detach().numpy()[:, :, 0, 0], context) + fc1.bias.detach().numpy()
    mean = hidden.mean(axis=1, keepdims=True)
    var = hidden.var(axis=1, keepdims=True)
    hidden = (hidden - mean) / np.sqrt(var + norm.eps) * norm.weight.detach().numpy() + norm.bias.detach().numpy()
    hidden = np.maximum(hidden, 0)
    return np.einsum("oc,nc->no", fc2.weight.detach().numpy()[:, :, 0, 0], hidden) + fc2.bias.detach().numpy()


def test_gc_matches_formula():
    block = randomize(GlobalContext(16, reduction=4))
    x = random_input()
    xs = x.numpy()
    n, c, h, w = xs.shape
    logits = np.einsum("c,nchw->nhw", block.attention.weight.detach().numpy().ravel(), xs) + block.attention.bias.item()
    logits = logits.reshape(n, h * w)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    context = np.einsum("ncp,np->nc", xs.reshape(n, c, h * w), weights)
    expected = xs * (1 / (1 + np.exp(-reference_mlp(block.scale_mlp, context))))[:, :, None, None]
    np.testing.assert_allclose(block(x).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


# --- all blocks --------------------------------------------------------------------------------------

BLOCKS = {
    "gdn": lambda: GDN(16),
    "igdn": lambda: GDN(16, inverse=True),
    "grn": lambda: GlobalResponseNorm(16),
    "gct": lambda: GatedChannelTransform(16),
    "sge": lambda: SpatialGroupEnhance(16, groups=4),
    "gc": lambda: GlobalContext(16),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_shape_preserved_and_gradients_reach_every_parameter(name):
    block = randomize(BLOCKS[name]()).double()
    x = random_input().requires_grad_()
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for parameter_name, parameter in block.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("name", ["none", "grn", "gc", "sge", "gct"])
def test_make_hyper_attention(name):
    block = make_hyper_attention(name, 16)
    x = random_input().float()
    assert block.float()(x).shape == x.shape


def test_make_hyper_attention_rejects_unknown():
    with pytest.raises(ValueError, match="unknown hyper_attention"):
        make_hyper_attention("se", 16)


@pytest.mark.parametrize("name", ["grn", "gc", "sge", "gct"])
def test_make_neutral_leaves_a_constant_multiple_that_still_learns(name):
    """After make_neutral a trained block is a constant times its input (the constant it returns),
    and its gradients still reach the parameters that make it more than that."""
    block = randomize(make_hyper_attention(name, 16)).double()
    scale = block.make_neutral()
    x = random_input().requires_grad_()
    y = block(x)
    torch.testing.assert_close(y, scale * x, rtol=1e-12, atol=1e-12)
    (y * torch.linspace(-1, 1, x.numel(), dtype=x.dtype).view_as(x)).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
