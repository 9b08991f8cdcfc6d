"""The StyleGAN2 objective's pieces against direct computations: R1, path length, APA, ADA, EMA, Adam."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.augment import AugmentPipe
from core.networks import Discriminator, Generator
from core.training.config import LossSpec, TrainingOptions
from core.training.distributed import DistEnv, average_gradients_
from core.training.ema import ema_beta, update_ema
from core.training.loop import build_phases
from core.training.loss import StyleGAN2Loss
from core.training.stats import StatsBank, StatsReader

RES = 16


def nets() -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=RES, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=128, channel_max=16))
    D = Discriminator(c_dim=0, img_resolution=RES, img_channels=3, channel_base=128, channel_max=16,
                      epilogue_kwargs=dict(mbstd_group_size=2))
    return G.train().requires_grad_(False), D.train().requires_grad_(False)


def batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.rand([n, 3, RES, RES], generator=g) * 2 - 1, torch.zeros([n, 0]),
            torch.randn([n, 8], generator=g), torch.zeros([n, 0]))


class Recorder(nn.Module):
    """Wraps D and keeps every image batch it was shown; ``shift`` moves its logits (to vary their signs)."""

    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D = D
        self.seen: list[torch.Tensor] = []
        self.shift = 0.0

    def forward(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self.seen.append(img.detach().clone())
        return self.D(img, c) - self.shift



def loss_with_stats(spec: LossSpec) -> tuple[Generator, Discriminator, StyleGAN2Loss, StatsReader]:
    """Fresh tiny G and D, the loss over them reporting into a stats bank, and a reader of that bank."""
    G, D = nets()
    bank = StatsBank(torch.device("cpu"))
    return G, D, StyleGAN2Loss(G, D, spec, bank), StatsReader(bank)

def test_r1_penalty_and_gradient_match_direct_computation() -> None:
    G, D, loss, reader = loss_with_stats(LossSpec(r1_gamma=0.5))
    real, c, z, gc = batch()
    D.requires_grad_(True)
    loss.accumulate_gradients("Dreg", real, c, z, gc, gain=16)
    got = {n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None}
    # Direct: gamma/2 * |dD/dx|^2, averaged over the batch, times the lazy interval.
    D.zero_grad(set_to_none=True)
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, c).sum(), [x], create_graph=True)
    penalty = grad.square().sum([1, 2, 3])
    (penalty.mean() * 0.5 / 2 * 16).backward()
    for name, p in D.named_parameters():
        expected = p.grad if p.grad is not None else torch.zeros_like(p)  # R1 does not reach the output bias
        torch.testing.assert_close(got[name], expected, msg=name)
    assert reader.read()["Loss/r1_penalty"].mean == pytest.approx(penalty.mean().item(), rel=1e-5)


def test_non_saturating_losses() -> None:
    G, D, loss, reader = loss_with_stats(LossSpec(style_mixing_prob=0))
    real, c, z, gc = batch()
    G.requires_grad_(True)
    torch.manual_seed(7)
    loss.accumulate_gradients("Gmain", real, c, z, gc, gain=1)
    G.requires_grad_(False)
    D.requires_grad_(True)
    torch.manual_seed(7)
    fake_logits = D(G(z, gc), gc)
    stats = reader.read()
    assert stats["Loss/G/loss"].mean == pytest.approx(F.softplus(-fake_logits).mean().item(), rel=1e-5)
    torch.manual_seed(8)
    loss.accumulate_gradients("Dmain", real, c, z, gc, gain=1)
    torch.manual_seed(8)
    d_loss = F.softplus(D(G(z, gc), gc)) + F.softplus(-D(real, c))
    assert reader.read()["Loss/D/loss"].mean == pytest.approx(d_loss.mean().item(), rel=1e-5)


def test_path_length_mean_moves_once_per_phase_by_the_global_mean() -> None:
    G, D = nets()
    bank = StatsBank(torch.device("cpu"))
    loss = StyleGAN2Loss(G, D, LossSpec(pl_decay=0.01, style_mixing_prob=0), bank)
    real, c, z, gc = batch(8)
    G.requires_grad_(True)
    lengths = []
    for k in range(2):  # two accumulation rounds of 4, each measured against the phase-start mean
        loss.accumulate_gradients("Greg", real, c, z[k::2], gc[k::2], gain=2)
        assert float(loss.pl_mean) == 0.0
        lengths.append(loss._pl_sum.clone())
    total = float(loss._pl_sum)
    loss.finish_phase("Greg", DistEnv())
    assert float(loss.pl_mean) == pytest.approx(0.01 * total / 4)  # shrink 2: 2 images per round
    assert all(p.grad is not None for p in G.synthesis.parameters() if p.requires_grad and p.ndim > 1)


def test_path_length_penalty_and_gradient_match_direct_computation() -> None:
    G, D = nets()
    ref = copy.deepcopy(G)  # mapping() moves w_avg in training mode: the direct path starts from the same state
    bank = StatsBank(torch.device("cpu"))
    reader = StatsReader(bank)
    spec = LossSpec(pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2, style_mixing_prob=0)
    loss = StyleGAN2Loss(G, D, spec, bank)
    loss.pl_mean.fill_(0.3)  # a non-zero running mean, so the penalty's centre matters
    _, _, z, gc = batch(8)
    G.requires_grad_(True)
    torch.manual_seed(5)
    loss.accumulate_gradients("Greg", _, _, z, gc, gain=3)
    got = {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}
    # Direct: |J_w^T y| with y ~ N(0, I)/sqrt(H*W), the root mean over ws of the squared norm over w_dim;
    # penalty (length - a)^2 with a = pl_mean moved by decay towards this batch's mean length.
    ref.requires_grad_(True)
    torch.manual_seed(5)
    n = 8 // 2
    ws = ref.mapping(z[:n], gc[:n])
    img = ref.synthesis(ws)
    y = torch.randn_like(img) / math.sqrt(RES * RES)
    (jac_y,) = torch.autograd.grad((img * y).sum(), [ws], create_graph=True)
    lengths = torch.sqrt(jac_y.pow(2).sum(dim=2).mean(dim=1))
    a = 0.3 + 0.01 * (lengths.mean() - 0.3)
    penalty = (lengths - a).pow(2)
    (penalty.mean() * 2.0 * 3).backward()
    stats = reader.read()
    assert stats["Loss/pl_penalty"].mean == pytest.approx(penalty.mean().item(), rel=1e-5)
    assert stats["Loss/G/reg"].mean == pytest.approx(2.0 * penalty.mean().item(), rel=1e-5)
    assert float(loss._pl_sum) == pytest.approx(lengths.sum().item(), rel=1e-5) and loss._pl_count == n
    checked = 0
    for name, p in ref.named_parameters():
        expected = p.grad if p.grad is not None else torch.zeros_like(p)
        torch.testing.assert_close(got.get(name, torch.zeros_like(p)), expected, rtol=1e-4, atol=1e-7, msg=name)
        checked += int(expected.abs().sum() > 0)
    assert checked > 10  # the penalty reaches the synthesis weights, not only a bias or two


def test_apa_shows_pseudo_reals_in_both_real_passes() -> None:
    G, D = nets()
    recorder = Recorder(D)
    p = {"value": 1.0}
    seen_signs: list[torch.Tensor] = []
    loss = StyleGAN2Loss(G, recorder, LossSpec(style_mixing_prob=0), StatsBank(torch.device("cpu")),
                         apa_p=lambda: p["value"], real_signs_hook=seen_signs.append)
    real, c, z, gc = batch()
    G.requires_grad_(True)
    loss.accumulate_gradients("Gmain", real, c, z, gc, gain=1, round_idx=0)
    fakes = loss.pseudo[0]
    with torch.no_grad():  # an untrained D scores every image alike: shift its logits so signs differ
        recorder.shift = float(D(fakes, c).median())
    G.requires_grad_(False)
    D.requires_grad_(True)
    recorder.seen.clear()
    loss.accumulate_gradients("Dmain", real, c, z, gc, gain=1, round_idx=0)
    loss.accumulate_gradients("Dreg", real, c, z, gc, gain=16, round_idx=0)
    # Dmain: fakes pass, then the real pass (all pseudo at p = 1); Dreg: the real pass again.
    torch.testing.assert_close(recorder.seen[1], fakes)
    torch.testing.assert_close(recorder.seen[2], fakes)
    # r_t is fed the signs of D on what D was shown as real: here the pseudo reals, not the reals.
    with torch.no_grad():
        on_fakes, on_reals = (D(fakes, c) - recorder.shift).sign(), (D(real, c) - recorder.shift).sign()
    assert not torch.equal(on_fakes, on_reals)  # the batch tells the two apart
    assert len(seen_signs) == 2 and all(torch.equal(s, on_fakes) for s in seen_signs)
    p["value"] = 0.0
    recorder.seen.clear()
    seen_signs.clear()
    loss.accumulate_gradients("Dmain", real, c, z, gc, gain=1, round_idx=0)
    torch.testing.assert_close(recorder.seen[1], real)
    assert len(seen_signs) == 1 and torch.equal(seen_signs[0], on_reals)


def test_ada_pipe_sees_every_image_D_sees_and_G_learns_through_it() -> None:
    G, D = nets()
    pipe = AugmentPipe.from_preset("bgc")
    pipe.p.fill_(1.0)
    calls: list[int] = []
    pipe.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    loss = StyleGAN2Loss(G, D, LossSpec(style_mixing_prob=0), StatsBank(torch.device("cpu")), augment_pipe=pipe)
    real, c, z, gc = batch()
    G.requires_grad_(True)
    loss.accumulate_gradients("Gmain", real, c, z, gc, gain=1)
    assert calls == [4]  # the fakes in G's pass
    assert G.synthesis.b16.torgb.weight.grad.abs().sum() > 0  # the gradient went through the pipe
    loss.accumulate_gradients("Greg", real, c, z, gc, gain=4)
    assert calls == [4]  # path length looks at G alone
    G.requires_grad_(False)
    D.requires_grad_(True)
    loss.accumulate_gradients("Dmain", real, c, z, gc, gain=1)
    loss.accumulate_gradients("Dreg", real, c, z, gc, gain=16)
    assert calls == [4, 4, 4, 4]  # fakes and reals in Dmain, reals in the R1 pass


def test_style_mixing_takes_late_ws_from_another_z() -> None:
    G, D = nets()
    bank = StatsBank(torch.device("cpu"))
    _, c, z, _ = batch()
    same = StyleGAN2Loss(G, D, LossSpec(style_mixing_prob=0), bank).run_G(z, c)[1]
    assert torch.equal(same, same[:, :1].expand_as(same))  # one w broadcast to every layer
    torch.manual_seed(0)
    mixed = StyleGAN2Loss(G, D, LossSpec(style_mixing_prob=1), bank).run_G(z, c)[1]
    differs = (mixed != mixed[:, :1]).any(dim=2).any(dim=0)
    cutoff = int(differs.nonzero()[0])
    assert 1 <= cutoff < G.num_ws and differs[cutoff:].all() and not differs[:cutoff].any()


def test_gradient_guard_replaces_non_finite_values() -> None:
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([float("nan"), float("inf"), -float("inf"), 2.0])
    average_gradients_([p], DistEnv())
    assert p.grad.tolist() == [0.0, 1e5, -1e5, 2.0]


def test_lazy_regularisation_corrects_adam() -> None:
    from core.training.config import DataSpec, resolve_spec

    spec = resolve_spec(TrainingOptions(outdir="o", data="d", cfg="cpu32", glr=0.01, dlr=0.02),
                        DataSpec(path="d", resolution=RES, channels=3), 1, "cpu")
    G, D = nets()
    phases = build_phases(spec, G, D)
    assert [(p.name, p.interval) for p in phases] == [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]
    g_group, d_group = phases[0].opt.param_groups[0], phases[2].opt.param_groups[0]
    assert phases[0].opt is phases[1].opt and phases[2].opt is phases[3].opt
    assert g_group["lr"] == pytest.approx(0.01 * 4 / 5) and d_group["lr"] == pytest.approx(0.02 * 16 / 17)
    assert g_group["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert d_group["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))


def test_ema_half_life_and_ramp_up() -> None:
    batch_size, ema_kimg = 32, 10.0
    beta = ema_beta(batch_size, ema_kimg, None, cur_nimg=10**9)
    assert beta ** (ema_kimg * 1000 / batch_size) == pytest.approx(0.5)
    # Ramp-up: early on the half-life is cur_nimg * rampup images.
    ramped = ema_beta(batch_size, ema_kimg, 0.05, cur_nimg=20_000)
    assert ramped ** (20_000 * 0.05 / batch_size) == pytest.approx(0.5)
    assert ema_beta(batch_size, ema_kimg, 0.05, cur_nimg=0) == pytest.approx(0.0, abs=1e-30)


def test_update_ema_lerps_parameters_and_copies_buffers() -> None:
    G, _ = nets()
    G_ema, _ = nets()
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
        G.mapping.w_avg.fill_(3.0)
    before = {k: v.clone() for k, v in G_ema.named_parameters()}
    update_ema(G_ema, G, beta=0.75)
    for name, p in G_ema.named_parameters():
        expected = 0.75 * before[name] + 0.25 * dict(G.named_parameters())[name]
        torch.testing.assert_close(p, expected)
    assert torch.equal(G_ema.mapping.w_avg, G.mapping.w_avg)


def test_stats_readers_have_their_own_windows_and_skip_non_finite() -> None:
    bank = StatsBank(torch.device("cpu"))
    a, b = StatsReader(bank), StatsReader(bank)
    bank.report("Loss/G/loss", torch.tensor([1.0, 3.0]))
    first = a.read()["Loss/G/loss"]
    assert (first.num, first.mean, first.std) == (2, 2.0, 1.0)
    bank.report("Loss/G/loss", torch.tensor([5.0, float("nan")]))
    assert a.read()["Loss/G/loss"].mean == 5.0 and a.read() == {}
    both = b.read()["Loss/G/loss"]
    assert both.num == 3 and both.mean == pytest.approx(3.0) and both.std == pytest.approx(math.sqrt(8 / 3))
    with pytest.raises(KeyError):
        bank.report("Loss/unknown", 1.0)


def test_diffaugment_sees_every_image_D_sees_and_G_learns_through_the_augmented_fakes() -> None:
    """As in the DiffAugment paper: D(T(x)), D(T(G(z))), and G's gradient flows through T. With
    cutout alone, the pixels T cut out of a fake get no gradient and the others do."""
    from core.augment.diffaug import DiffAugment

    G, D = nets()
    diffaug = DiffAugment("cutout")
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def keep(module: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if inp[0].requires_grad:
            inp[0].retain_grad()
        seen.append((inp[0], out))

    diffaug.register_forward_hook(keep)
    loss = StyleGAN2Loss(G, D, LossSpec(style_mixing_prob=0), StatsBank(torch.device("cpu")), diffaug=diffaug)
    real, c, z, gc = batch()
    G.requires_grad_(True)
    loss.accumulate_gradients("Gmain", real, c, z, gc, gain=1)
    (fake, augmented), = seen
    cut = (augmented == 0) & (fake != 0)
    assert cut.any() and (~cut).any()
    assert fake.grad is not None
    assert torch.all(fake.grad[cut] == 0) and fake.grad[~cut].abs().sum() > 0
    assert G.synthesis.b16.torgb.weight.grad.abs().sum() > 0
    G.requires_grad_(False)
    D.requires_grad_(True)
    loss.accumulate_gradients("Dmain", real, c, z, gc, gain=1)
    loss.accumulate_gradients("Dreg", real, c, z, gc, gain=16)
    assert len(seen) == 4  # fakes and reals in Dmain, reals in the R1 pass
    torch.testing.assert_close(seen[2][0], real)  # the reals D sees went through DiffAugment
