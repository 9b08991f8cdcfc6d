"""APA, adaptive pseudo augmentation (Jiang et al., "Deceive D", NeurIPS 2021).

With probability p each real image shown to D is replaced by a recent, detached generated image,
i.e. D is told that some fakes are real; p follows the same sign(D(real)) heuristic as ADA (own
AdaController, target 0.6).

Where the training loop calls it (as the DeceiveD code does):

* Gmain: after generating, ``apa.store(gen_img)`` keeps the batch (detached) as pseudo data.
* Dmain, real pass: ``real = apa(real_img)`` BEFORE the ADA pipe / ``run_D``; with
  ``--with-dataaug`` the ADA pipe then runs inside ``run_D`` on all of D's inputs as usual.
* Dreg (R1): ``real = apa(real_img).detach().requires_grad_(True)``, then D's real pass and the R1
  gradient w.r.t. that tensor (so R1 also sees the pseudo reals).
* Once per iteration: ``apa.controller.update(real_logits.sign(), batch_size, cur_nimg)``.

Cost: one Bernoulli draw per image and one ``torch.where`` with a broadcast mask; at p = 0 (or
when no image is picked) the reals tensor itself is returned.
"""

from __future__ import annotations

import torch

from core.augment.adaptive import AdaController


def apa_replace(
    reals: torch.Tensor, fakes: torch.Tensor | None, p: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replaces each real by a fake with probability ``p``: returns ``(mixed, mask)``, mask [N] bool.

    Fakes are detached; a fakes batch smaller than the reals is cycled (real i gets fake i mod M).
    """
    n = reals.shape[0]
    if p <= 0 or fakes is None or n == 0:
        return reals, torch.zeros(n, dtype=torch.bool, device=reals.device)
    if fakes.shape[1:] != reals.shape[1:]:
        raise ValueError(
            f"APA: fake images {tuple(fakes.shape[1:])} do not match real images {tuple(reals.shape[1:])}"
        )
    draw_device = generator.device if generator is not None else reals.device
    mask = (torch.rand(n, generator=generator, device=draw_device) < p).to(reals.device)
    fakes = fakes.detach().to(device=reals.device, dtype=reals.dtype)
    if fakes.shape[0] < n:
        fakes = fakes[torch.arange(n, device=reals.device) % fakes.shape[0]]
    elif fakes.shape[0] > n:
        fakes = fakes[:n]
    mixed = torch.where(mask.reshape(n, *([1] * (reals.ndim - 1))), fakes, reals)
    return mixed, mask


class PseudoAugment:
    """APA state for a training loop: the controller (p) and the latest pseudo (fake) batch."""

    def __init__(self, controller: AdaController | None = None) -> None:
        self.controller = controller if controller is not None else AdaController(target=0.6)
        self._fakes: torch.Tensor | None = None

    @property
    def p(self) -> float:
        return self.controller.p

    def store(self, fakes: torch.Tensor) -> None:
        """Keeps the most recent generated batch (detached) as pseudo data."""
        self._fakes = fakes.detach()

    def __call__(
        self, reals: torch.Tensor, generator: torch.Generator | None = None, return_mask: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        mixed, mask = apa_replace(reals, self._fakes, self.controller.p, generator)
        return (mixed, mask) if return_mask else mixed

    def state_dict(self) -> dict:
        return {"controller": self.controller.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
