"""The StyleGAN2 objective with lazy regularisation, ADA's augmentation and APA's pseudo reals.

Phases, as in the public training loop:
  Gmain  non-saturating loss on D(aug(G(z)))                          (G learns)
  Greg   path-length penalty on G, every ``G_reg_interval`` minibatches (G learns)
  Dmain  logistic loss on D(aug(G(z))) and D(aug(x))                    (D learns)
  Dreg   R1 penalty on the reals D sees, every ``D_reg_interval`` minibatches (D learns)

ADA augments every image D looks at (reals and fakes, in G's pass too, so G's gradient flows
through the augmentation); DiffAugment (``--aug diffaug``) does the same with its always-on ops,
as in its paper: D(T(x)), D(T(G(z))), and G's loss through T(G(z)).
APA replaces each real shown to D (Dmain and the R1 pass) by a detached
fake from the same slot of the last Gmain pass with probability p, and D is told it is real.
Both feed sign(D(real)) of every real pass (Dmain and R1) to the p controller.

With ``compile_first_order`` the first-order passes (Gmain's G.synthesis and D, Dmain's G.synthesis
and D on fakes and on reals without R1) run through torch.compile; the regularisation passes
(path length, R1) need double backward, which compiled graphs do not support, and stay eager.
The compiled callables wrap the modules' ``forward`` and share their parameters, so state_dict
keys and checkpoints do not change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.augment import apa_replace
from core.rundir import schema
from core.training.config import LossSpec
from core.training.distributed import DistEnv, all_reduce_sum_
from core.training.stats import StatsBank

log = logging.getLogger(__name__)


class StyleGAN2Loss:
    """Accumulates the gradients of one phase for one slice of the minibatch."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        spec: LossSpec,
        stats: StatsBank,
        augment_pipe: nn.Module | None = None,
        apa_p: Callable[[], float] | None = None,
        real_signs_hook: Callable[[torch.Tensor], None] | None = None,
        diffaug: nn.Module | None = None,
        compile_first_order: bool = False,
    ) -> None:
        self.G = G
        self.D = D
        self.spec = spec
        self.stats = stats
        self.augment_pipe = augment_pipe
        self.apa_p = apa_p  # APA on: the current p (None: APA off)
        self.real_signs_hook = real_signs_hook  # sees sign(D(real)) of every real pass (ADA's r_t)
        self.diffaug = diffaug  # DiffAugment on every image D sees (None: off)
        device = next(G.parameters()).device
        self.pl_mean = torch.zeros([], device=device)
        self._pl_sum = torch.zeros([], device=device)
        self._pl_count = 0
        self.pseudo: dict[int, torch.Tensor] = {}  # APA: the last Gmain fakes, by accumulation round
        # What the first-order passes call: the modules themselves, or compiled forwards (lazy:
        # each compiles at its first call, once per grad mode and requires_grad pattern).
        self.synthesis_main: Callable[..., torch.Tensor] = G.synthesis
        self.D_main: Callable[..., torch.Tensor] = D
        if compile_first_order:
            log.info("--compile: Gmain and Dmain run through torch.compile (compiled at their first calls; "
                     "path length and R1 stay eager)")
            self.synthesis_main = compile_forward(G.synthesis)
            self.D_main = compile_forward(D)

    # -- networks -------------------------------------------------------------------------------

    def run_G(self, z: torch.Tensor, c: torch.Tensor, first_order: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``first_order``: no double backward will go through this pass (it may run compiled)."""
        ws = self.G.mapping(z, c)
        if self.spec.style_mixing_prob > 0:
            ws = self._mix_styles(ws, z, c)
        synthesis = self.synthesis_main if first_order else self.G.synthesis
        return synthesis(ws), ws

    def _mix_styles(self, ws: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # With probability style_mixing_prob, the ws from a random layer on come from another z.
        # Built with a mask rather than a tensor index so the GPU never waits on the host.
        num_ws = ws.shape[1]
        cutoff = torch.randint(1, num_ws, [], device=ws.device) if num_ws > 1 else torch.ones([], device=ws.device)
        mix = torch.rand([], device=ws.device) < self.spec.style_mixing_prob
        cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, num_ws))
        ws2 = self.G.mapping(torch.randn_like(z), c, skip_w_avg_update=True)
        layer = torch.arange(num_ws, device=ws.device)
        return torch.where((layer >= cutoff)[None, :, None], ws2, ws)

    def run_D(self, img: torch.Tensor, c: torch.Tensor, first_order: bool = False) -> torch.Tensor:
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        if self.diffaug is not None:
            img = self.diffaug(img)
        return (self.D_main if first_order else self.D)(img, c)

    # -- phases ---------------------------------------------------------------------------------

    def accumulate_gradients(
        self,
        phase: str,
        real_img: torch.Tensor,
        real_c: torch.Tensor,
        gen_z: torch.Tensor,
        gen_c: torch.Tensor,
        gain: float,
        round_idx: int = 0,
    ) -> None:
        """Backpropagate ``gain`` x the phase's mean loss over this slice into the phase's module."""
        if phase not in ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth"):
            raise ValueError(f"unknown phase {phase!r}")
        do_Gmain = phase in ("Gmain", "Gboth")
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Gpl = phase in ("Greg", "Gboth") and self.spec.pl_weight != 0
        do_Dr1 = phase in ("Dreg", "Dboth") and self.spec.r1_gamma != 0
        if do_Gmain:
            self._G_main(gen_z, gen_c, gain, round_idx)
        if do_Gpl:
            self._G_pl(gen_z, gen_c, gain)
        loss_Dgen = self._D_fake(gen_z, gen_c, gain) if do_Dmain else None
        if do_Dmain or do_Dr1:
            self._D_real(real_img, real_c, gain, round_idx, loss_Dgen, do_Dmain, do_Dr1)

    def _G_main(self, gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float, round_idx: int) -> None:
        gen_img, _ = self.run_G(gen_z, gen_c, first_order=True)
        if self.apa_p is not None:
            self.pseudo[round_idx] = gen_img.detach()
        gen_logits = self.run_D(gen_img, gen_c, first_order=True)
        self.stats.report(schema.STAT_SCORES_FAKE, gen_logits)
        self.stats.report(schema.STAT_SIGNS_FAKE, gen_logits.sign())
        loss = F.softplus(-gen_logits)
        self.stats.report(schema.STAT_LOSS_G, loss)
        loss.mean().mul(gain).backward()

    def _G_pl(self, gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float) -> None:
        n = max(gen_z.shape[0] // self.spec.pl_batch_shrink, 1)
        gen_img, gen_ws = self.run_G(gen_z[:n], gen_c[:n])
        # Random image-space direction, scaled so the expected length does not depend on resolution.
        pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
        (pl_grads,) = torch.autograd.grad(outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True)
        pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
        # The running mean moves once per phase, by the mean over all rounds and processes (see
        # finish_phase); each round measures against the phase-start value moved by its own slice,
        # which is exactly the public rule for one process and one round.
        pl_mean = self.pl_mean.lerp(pl_lengths.mean(), self.spec.pl_decay)
        self._pl_sum += pl_lengths.detach().sum()
        self._pl_count += pl_lengths.shape[0]
        pl_penalty = (pl_lengths - pl_mean).square()
        self.stats.report(schema.STAT_PL, pl_penalty)
        loss = pl_penalty * self.spec.pl_weight
        self.stats.report(schema.STAT_LOSS_G_REG, loss)
        # "* 0" ties every synthesis parameter into the graph (zero gradients rather than none), so
        # Adam decays their moments on this step too, as in the public code.
        (gen_img[:, 0, 0, 0] * 0 + loss).mean().mul(gain).backward()

    def _D_fake(self, gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float) -> torch.Tensor:
        with torch.no_grad():
            gen_img, _ = self.run_G(gen_z, gen_c, first_order=True)
        gen_logits = self.run_D(gen_img, gen_c, first_order=True)
        self.stats.report(schema.STAT_SCORES_FAKE, gen_logits)
        self.stats.report(schema.STAT_SIGNS_FAKE, gen_logits.sign())
        loss = F.softplus(gen_logits)
        loss.mean().mul(gain).backward()
        return loss.detach()

    def _D_real(
        self,
        real_img: torch.Tensor,
        real_c: torch.Tensor,
        gain: float,
        round_idx: int,
        loss_Dgen: torch.Tensor | None,
        do_Dmain: bool,
        do_Dr1: bool,
    ) -> None:
        img = real_img.detach()
        if self.apa_p is not None:
            # Fakes from the same round of the last Gmain pass: a per-round store keeps the result
            # independent of how the minibatch is split over rounds and processes.
            img, _ = apa_replace(img, self.pseudo.get(round_idx), self.apa_p())
        img = img.detach().requires_grad_(do_Dr1)
        real_logits = self.run_D(img, real_c, first_order=not do_Dr1)
        signs = real_logits.detach().sign()
        self.stats.report(schema.STAT_SCORES_REAL, real_logits)
        self.stats.report(schema.STAT_RT, signs)
        if self.real_signs_hook is not None:
            self.real_signs_hook(signs)
        loss = real_logits * 0  # zero gradients, not none, for parameters R1 does not reach (see _G_pl)
        if do_Dmain:
            loss_Dreal = F.softplus(-real_logits)
            self.stats.report(schema.STAT_LOSS_D, loss_Dreal + (loss_Dgen if loss_Dgen is not None else 0))
            loss = loss + loss_Dreal
        if do_Dr1:
            # R1 is taken w.r.t. the image before augmentation, through the pipe (double backward).
            (r1_grads,) = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[img], create_graph=True)
            r1_penalty = r1_grads.square().sum([1, 2, 3])
            loss_Dr1 = r1_penalty * (self.spec.r1_gamma / 2)
            self.stats.report(schema.STAT_R1, r1_penalty)
            self.stats.report(schema.STAT_LOSS_D_REG, loss_Dr1)
            loss = loss + loss_Dr1.unsqueeze(1)
        loss.mean().mul(gain).backward()

    def finish_phase(self, phase: str, env: DistEnv | None = None) -> None:
        """After all rounds of a phase: move the path-length mean by the phase's global mean."""
        if phase not in ("Greg", "Gboth") or self._pl_count == 0:
            return
        moments = torch.stack([self._pl_sum, torch.tensor(float(self._pl_count), device=self._pl_sum.device)])
        if env is not None:
            all_reduce_sum_(moments, env)
        self.pl_mean.copy_(self.pl_mean.lerp(moments[0] / moments[1], self.spec.pl_decay))
        self._pl_sum.zero_()
        self._pl_count = 0

    # -- resume ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.pl_mean.copy_(state["pl_mean"].to(self.pl_mean.device))


def compile_forward(module: nn.Module) -> Callable[..., torch.Tensor]:
    """``module.forward`` through torch.compile with static shapes, sharing the module's parameters.

    The bound forward is compiled, not the module, so no ``_orig_mod`` wrapper ever reaches a
    state_dict. ``fallback_random`` makes random ops inside the graph (G's per-pixel noise) draw
    from torch's generator exactly as eager does, so a compiled run sees the same noise.
    ``layout_optimization`` off: on CPU Inductor otherwise turns every convolution of the graph
    channels-last, and G.synthesis compiled that way gave gradients ~80x further from a float64
    reference than eager's (relative L2 3.3e-5 against 4.3e-7, cpu32); with it off, 3.5e-7.
    """
    return torch.compile(module.forward, dynamic=False,
                         options={"fallback_random": True, "layout_optimization": False})


__all__ = ["StyleGAN2Loss", "compile_forward"]
