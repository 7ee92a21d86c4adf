"""Training: the loss, the schedule, and checkpoints that resume exactly (or, packed, closely) and are never half-written."""

import dataclasses
import json
import math

import pytest
import torch

from codec.errors import CodecError
from codec.train import Trainer, learning_rate, train
from codec.training.checkpoint import Checkpoint
from codec.training.config import TrainConfig
from codec.training.losses import rd_loss
from codec.models.architectures import build_model


def config(data, steps, **recipe):
    return TrainConfig(data=str(data), lmbda=0.01, N=8, M=16, steps=steps, batch_size=2, crop=64, warmup=2, **recipe)


def test_rd_loss_is_lambda_mse_plus_bpp():
    x = torch.full((1, 3, 4, 4), 0.5)
    output = {"x_hat": x + 0.1, "likelihoods": {"y": torch.full((1, 2, 1, 1), 0.5)}}
    loss, bpp, mse = rd_loss(output, x, lmbda=0.01, metric="mse")
    assert math.isclose(bpp.item(), 2 / 16)
    assert math.isclose(mse.item(), 0.01, rel_tol=1e-5)
    assert math.isclose(loss.item(), 0.01 * 255**2 * 0.01 + 2 / 16, rel_tol=1e-5)


def test_learning_rate_schedule():
    c = TrainConfig(data="", lmbda=0.01, steps=1000, lr=1e-3, warmup=100, decay_fraction=0.2, final_lr_ratio=0.1)
    assert learning_rate(c, 0) == pytest.approx(1e-5)
    assert learning_rate(c, 99) == pytest.approx(1e-3)
    assert learning_rate(c, 500) == pytest.approx(1e-3)
    assert learning_rate(c, 900) == pytest.approx(0.55e-3)
    assert learning_rate(c, 1000) == pytest.approx(1e-4)


@pytest.mark.parametrize("recipe", [{"ema": 0.0, "ste": False}, {"ema": 0.9, "ste": True}])
def test_resumed_run_equals_uninterrupted_run(dataset, tmp_path, recipe):
    straight = train(config(dataset, 4, **recipe), tmp_path / "straight.ckpt", report=lambda *a: None)
    interrupted = tmp_path / "interrupted.ckpt"
    train(config(dataset, 2, **recipe), interrupted, report=lambda *a: None)
    train(config(dataset, 4, **recipe), interrupted, report=lambda *a: None, notice=lambda m: None)
    a, b = Checkpoint.load(straight), Checkpoint.load(interrupted)
    assert a["step"] == b["step"] == 4
    parts = ("model", "average") if recipe["ema"] else ("model",)
    assert ("average" in a) == (len(parts) == 2)
    for part in parts:
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def test_packed_checkpoint_is_smaller_and_resumes_close_to_the_run(dataset, tmp_path):
    straight = Checkpoint.load(train(config(dataset, 4, ema=0.9), tmp_path / "straight.ckpt", report=lambda *a: None))
    interrupted = train(config(dataset, 2, ema=0.9), tmp_path / "interrupted.ckpt", report=lambda *a: None)
    packed = tmp_path / "packed.ckpt"
    torch.save(Checkpoint.packed(Checkpoint.load(interrupted)), packed)
    assert packed.stat().st_size < 0.7 * interrupted.stat().st_size
    assert Checkpoint.load(packed)["optimizer"]["state"][0]["exp_avg_sq"].dtype == torch.bfloat16
    train(config(dataset, 4, ema=0.9), packed, report=lambda *a: None, notice=lambda m: None)
    resumed = Checkpoint.load(packed)
    assert resumed["step"] == 4 and "average" in resumed
    changed = False
    for key, value in straight["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-4), key
        changed |= not torch.equal(resumed["model"][key], value)
    assert changed  # the rounded moments steer it slightly off the uninterrupted run


def test_moving_average_is_what_ships(dataset, tmp_path, codec_home):
    """With --ema the checkpoint keeps the average apart from the live weights, and export ships the average."""
    from codec.export import export_checkpoint
    from codec.registry import get_card, load_model

    path = train(config(dataset, 3, ema=0.5), tmp_path / "ema.ckpt", report=lambda *a: None)
    state = Checkpoint.load(path)
    average = Checkpoint.weights(state)
    assert average.keys() == state["model"].keys()
    assert not torch.equal(average["g_a.0.weight"], state["model"]["g_a.0.weight"])
    exported = load_model(get_card(export_checkpoint(path, "averaged").name)).state_dict()
    assert torch.allclose(exported["g_a.0.weight"].float(), average["g_a.0.weight"], atol=1e-3)


def test_synthesis_sees_rounding_only_when_asked():
    """With straight-through rounding g_s gets round(y - mean) + mean in training, as when decoding;
    without, y plus uniform noise."""
    torch.manual_seed(0)
    model = build_model("mean-scale-hyperprior", N=8, M=16).train()
    x = torch.rand(1, 3, 64, 64)
    seen = {}
    model.gaussian_conditional.register_forward_hook(
        lambda module, args, kwargs, output: seen.update(y=args[0], means=kwargs["means"]), with_kwargs=True)
    model.g_s.register_forward_pre_hook(lambda module, args: seen.update(g_s=args[0]))
    model(x)
    def rounded(seen):
        return torch.round(seen["y"] - seen["means"]) + seen["means"]

    assert (seen["g_s"] - seen["y"]).abs().max() <= 0.5
    assert (seen["g_s"] - rounded(seen)).abs().max() > 0.01
    model.synthesis_sees_rounding = True
    model(x)
    assert torch.allclose(seen["g_s"], rounded(seen), atol=1e-5)


def test_factorized_synthesis_sees_rounding_around_the_medians():
    torch.manual_seed(0)
    model = build_model("factorized", N=8, M=16).train()
    model.synthesis_sees_rounding = True
    seen = {}
    model.g_s.register_forward_pre_hook(lambda module, args: seen.update(g_s=args[0]))
    x = torch.rand(1, 3, 64, 64)
    model(x)
    medians = model.entropy_bottleneck._get_medians()
    assert torch.allclose(seen["g_s"], torch.round(model.g_a(x) - medians) + medians, atol=1e-5)


def test_race_spends_each_budget_in_turns(dataset):
    """Contenders alternate, the one furthest behind its budget first; each is scored when done."""
    from codec.race import Contender, race
    from codec.training.validation import load_validation

    clock, order = [0.0], []

    class Timed(Trainer):
        def step(self):  # every step takes 0.125 s of the fake clock
            clock[0] += 0.125
            order.append(self.name)
            return super().step()

    contenders = []
    for name, budget in (("short", 0.5), ("long", 1.5)):
        trainer = Timed(config(dataset, 100))
        trainer.name = name
        contenders.append(Contender(name, trainer, budget))
    race(contenders, every_s=60, val_images=load_validation(sorted(dataset.iterdir())[:1], 64, torch.device("cpu")),
         clock=lambda: clock[0])
    short, long = contenders
    assert (short.steps, long.steps) == (4, 12)
    assert order == ["short", "long", "long", "long"] * 4
    assert [len(short.curve), len(long.curve)] == [1, 1] and short.curve[0]["steps"] == 4
    assert math.isfinite(long.curve[0]["val_psnr"])


def test_variable_rate_loss_weighs_each_crop_by_its_lambda():
    from codec.training.losses import LOSS_EXPONENT, LOSS_REFERENCE, variable_rate_loss

    x = torch.full((2, 3, 4, 4), 0.5)
    output = {"x_hat": x + 0.1, "likelihoods": {"y": torch.full((2, 2, 1, 1), 0.5)}}
    lambdas = torch.tensor([0.001, 0.1])
    loss, bpp, mse = variable_rate_loss(output, x, lambdas, "mse")
    per_crop = [(lam / LOSS_REFERENCE) ** -LOSS_EXPONENT * (lam * 255**2 * 0.01 + 2 / 16) for lam in lambdas.tolist()]
    assert math.isclose(loss.item(), sum(per_crop) / 2, rel_tol=1e-5)
    assert math.isclose(bpp.item(), 2 / 16) and math.isclose(mse.item(), 0.01, rel_tol=1e-5)


def test_variable_rate_run_starts_from_a_one_rate_model_and_resumes(dataset, tmp_path):
    """The one-rate run's transforms carry over; the gains start at (anchor / its lambda)^0.56."""
    from codec.models.architectures import GainedMeanScaleHyperprior

    one_rate = train(config(dataset, 2, hyper_block=4), tmp_path / "one.ckpt", report=lambda *a: None)
    variable = dict(lmbda=None, arch="gained-mean-scale-hyperprior", hyper_block=4, init=str(one_rate), ema=0.0)
    out = tmp_path / "vr.ckpt"
    notices = []
    train(TrainConfig(**{**config(dataset, 1).__dict__, **variable}), out, report=lambda *a: None, notice=notices.append)
    assert "starting from the weights of model" in notices[0]
    state = Checkpoint.load(out)
    source = Checkpoint.load(one_rate)["average"]
    assert torch.allclose(state["model"]["g_s.6.weight"], source["module.g_s.6.weight"], atol=1e-2)
    gains = torch.tensor(GainedMeanScaleHyperprior.anchor_lambdas) / 0.01
    assert torch.allclose(state["model"]["gain"][:, 0], gains.pow(0.56), rtol=0.05)
    train(TrainConfig(**{**config(dataset, 2).__dict__, **variable}), out, report=lambda *a: None, notice=notices.append)
    assert Checkpoint.load(out)["step"] == 2


@pytest.mark.parametrize("place", ["both", "h_a"])
def test_a_model_that_gains_hyperprior_blocks_starts_computing_what_it_did(dataset, tmp_path, place):
    """Each new block starts neutral (a constant multiple, divided out by the next convolution), so
    fine-tuning begins from the model it started from, not from a damaged copy."""
    source = train(config(dataset, 1, hyper_block=4, ema=0.0), tmp_path / "plain.ckpt", report=lambda *a: None)
    plain = Checkpoint.model(Checkpoint.load(source))
    generator = torch.Generator().manual_seed(0)
    y, z = torch.randn(2, 16, 4, 4, generator=generator), torch.randn(2, 8, 1, 1, generator=generator)
    for block in ("grn", "gc", "sge", "gct"):
        trainer = Trainer(config(dataset, 1, hyper_block=4, hyper_attention=block, hyper_attention_in=place))
        trainer.start_from(str(source))
        model = trainer.model
        assert any(hasattr(m, "make_neutral") for m in model.h_a)
        with torch.no_grad():  # the float transforms that training runs
            torch.testing.assert_close(model.h_a(y), plain.h_a(y), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(model.h_s(z), plain.h_s(z), rtol=1e-5, atol=1e-6)


def test_a_checkerboard_model_starts_from_a_variable_rate_one_and_learns_its_context(dataset, tmp_path):
    """Its context starts at zero, so it first codes as the model it started from does."""
    gained = dict(lmbda=None, arch="gained-mean-scale-hyperprior", hyper_block=4, ema=0.0)
    source = train(TrainConfig(**{**config(dataset, 1).__dict__, **gained}), tmp_path / "vr.ckpt", report=lambda *a: None)
    plain = Checkpoint.model(Checkpoint.load(source)).eval()
    trainer = Trainer(TrainConfig(**{**config(dataset, 2).__dict__, **gained, "arch": "gained-checkerboard-hyperprior"}))
    trainer.start_from(str(source))
    x, position = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(0)), torch.tensor([3.0])
    with torch.no_grad():
        assert torch.equal(trainer.model.eval()(x, position)["x_hat"], plain(x, position)["x_hat"])
    trainer.model.train()
    last = trainer.model.entropy_parameters[-1].weight
    trainer.step()
    assert last.abs().sum() > 0


def test_manifest_records_the_data_without_its_absolute_path(dataset, tmp_path, codec_home, monkeypatch):
    """Inside the current directory: the folder relative to it; elsewhere: its name and a hash of its file list."""
    import hashlib

    from codec.export import data_description, export_checkpoint

    path = train(config(dataset.resolve(), 1), tmp_path / "run.ckpt", report=lambda *a: None)
    digest = hashlib.sha256("\n".join(["0.png", "1.png", "2.png"]).encode()).hexdigest()[:12]
    described = f"data (sha256 {digest}, 3 files)"
    card = export_checkpoint(path, "portable")
    assert card.training["recipe"]["data"] == described and f"--data {described} " in card.training["command"]
    assert str(tmp_path) not in json.dumps(card.training)
    monkeypatch.chdir(tmp_path)
    assert data_description(str(dataset.resolve())) == data_description("data") == "data"
    assert data_description(str(tmp_path / "gone")) == "gone"


def test_a_time_budget_ends_the_run_and_decays_the_learning_rate(dataset, tmp_path):
    """With --minutes the schedule follows the clock: the run stops at its budget, the learning rate
    decayed to its floor, well before its steps. The clock is the test's: 10 ms each time it is read."""
    readings = []

    def clock() -> float:
        readings.append(len(readings) * 0.01)
        return readings[-1]

    out = train(config(dataset, 10**6, minutes=0.02, ema=0.0), tmp_path / "timed.ckpt", report=lambda *a: None, clock=clock)
    state = Checkpoint.load(out)
    assert 10 < state["step"] < 120 and 1.2 <= state["elapsed"] < 1.3
    rows = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert rows[-1]["lr"] < 0.1 * 1e-3  # from the peak of 1e-3 to near its floor of 5e-5
    with pytest.raises(CodecError, match="already trained"):
        train(config(dataset, 10**6, minutes=0.02, ema=0.0), out, report=lambda *a: None, notice=lambda m: None, clock=clock)


def test_a_race_by_the_clock_decays_the_learning_rate_over_the_budget(dataset):
    """by_clock: the schedule runs over the contender's own minutes, as `codec train --minutes` does."""
    from codec.race import Contender, race
    from codec.training.validation import load_validation

    clock, rates = [0.0], []

    class Timed(Trainer):
        def step(self, progress=None):
            clock[0] += 0.125
            result = super().step(progress=progress)
            rates.append(self.lr)
            return result

    recipe = dataclasses.replace(config(dataset, 10**6, decay_fraction=0.5, final_lr_ratio=0.1), warmup=0)
    race([Contender("timed", Timed(recipe), 1.0, by_clock=True)], every_s=60,
         val_images=load_validation(sorted(dataset.iterdir())[:1], 64, torch.device("cpu")), clock=lambda: clock[0])
    assert rates == pytest.approx([learning_rate(recipe, k, progress=k / 8) for k in range(8)])
    assert rates[:5] == [1e-3] * 5 and rates[-1] < 0.25e-3  # 7/8 of the way: 0.23e-3


def test_progress_drives_the_schedule():
    c = TrainConfig(data="", lmbda=0.01, steps=1000, lr=1e-3, warmup=10, decay_fraction=0.5, final_lr_ratio=0.1)
    assert learning_rate(c, 100, progress=0.4) == pytest.approx(1e-3)
    assert learning_rate(c, 100, progress=0.75) == pytest.approx(learning_rate(c, 750))
    assert learning_rate(c, 100, progress=1.0) == pytest.approx(1e-4)


def test_a_longer_resume_says_where_the_learning_rate_goes(dataset, tmp_path):
    """Extending a finished run re-raises the learning rate from its floor: the resume says so."""
    out = train(config(dataset, 3, ema=0.0), tmp_path / "short.ckpt", report=lambda *a: None)
    notices = []
    train(config(dataset, 4, ema=0.0), out, report=lambda *a: None, notice=notices.append)
    assert any("moves the learning rate from 5e-05 to 0.000525" in notice for notice in notices), notices


def test_bfloat16_training_runs_the_transforms_in_bfloat16_and_the_entropy_models_in_float32(dataset):
    """--precision bfloat16: g_a's and g_s's convolutions compute in bfloat16 (autocast), h_a's,
    h_s's and the likelihoods in float32; the step is the CPU path a GPU takes too."""
    from codec.train import Trainer

    trainer = Trainer(config(dataset, 10, precision="bfloat16"))
    seen = {}
    for name in ("g_a", "g_s", "h_a", "h_s"):
        first = next(m for m in getattr(trainer.model, name).modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
        first.register_forward_hook(lambda module, inputs, output, name=name: seen.update({name: output.dtype}))
    measured = trainer.step()
    assert seen == {"g_a": torch.bfloat16, "g_s": torch.bfloat16, "h_a": torch.float32, "h_s": torch.float32}
    assert all(math.isfinite(float(value)) for value in measured.values())
    assert Trainer(config(dataset, 10)).model.training_in_bfloat16 is False  # float32 unless asked


def test_unknown_device_and_precision_are_refused():
    from codec.training.distributed import training_device

    with pytest.raises(CodecError, match="unknown --device 'gpu'"):
        config("", 10, device="gpu")
    with pytest.raises(CodecError, match="unknown --precision 'fp16'"):
        config("", 10, precision="fp16")
    assert training_device("cpu") == torch.device("cpu")
