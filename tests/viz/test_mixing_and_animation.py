"""Style mixing by checked ws indices, the fractional mix seed, the noise seed, animations and Reset."""

from __future__ import annotations

import numpy as np
import torch

from viz.renderer import RenderRequest, mix_ws, model_from_generator, render_images, seed_blend_z, seed_z
from viz.ui import reset_state
from viz.widgets.seeds import SeedsState
from viz.widgets.stylemix import StyleMixState
from viz.widgets.trunc_noise import TruncNoiseState


def test_checked_indices_come_from_the_mix_seed_and_the_rest_from_the_main_seed() -> None:
    main = torch.zeros(2, 6, 4)  # two grid cells
    mix = torch.arange(6 * 4, dtype=torch.float32).reshape(1, 6, 4) + 1
    out = mix_ws(main, mix, (1, 4, 9))  # 9: beyond this generator's ws, ignored
    for i in range(6):
        expected = mix[0, i] if i in (1, 4) else main[0, i]
        for cell in range(2):
            torch.testing.assert_close(out[cell, i], expected)
    assert main.abs().sum() == 0  # the input is left alone
    torch.testing.assert_close(mix_ws(main, mix, ()), main)


def test_render_mixes_exactly_the_checked_indices(fixture_generator: torch.nn.Module) -> None:
    model = model_from_generator(fixture_generator, "fixture")
    G, checked = model.G, (0, 2, 5)
    with torch.inference_mode():
        shown = render_images(model, RenderRequest(model.key, x=4, mix_seed=9, mix_indices=checked))
        z = torch.from_numpy(np.stack([seed_z(4, G.z_dim), seed_z(9, G.z_dim)])).float()
        ws = G.mapping(z, None, skip_w_avg_update=True)
        expected_ws = ws[:1].clone()
        expected_ws[:, list(checked)] = ws[1:, list(checked)]
        expected = G.synthesis(expected_ws, noise_mode="const")
    pixels = (expected[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    assert np.abs(shown.astype(int) - pixels.astype(int)).max() <= 1


def test_a_fractional_mix_seed_blends_its_whole_neighbours() -> None:
    np.testing.assert_array_equal(seed_blend_z(3.0, 8), seed_z(3, 8))
    np.testing.assert_allclose(seed_blend_z(3.25, 8), 0.75 * seed_z(3, 8) + 0.25 * seed_z(4, 8))


def test_stylemix_state_checks_any_subset_and_animates_only_when_on() -> None:
    mix = StyleMixState(enabled=True, indices=[7, 1])
    mix.toggle(3, True)
    mix.toggle(7, False)
    assert mix.checked(num_ws=8) == (1, 3) and mix.checked(num_ws=2) == (1,)
    mix.advance(2.0)
    assert mix.seed == 1.0  # not animating
    mix.animate, mix.speed = True, 0.25
    mix.advance(2.0)
    assert mix.seed == 1.5
    mix.enabled = False
    mix.advance(2.0)
    assert mix.seed == 1.5


def test_random_noise_is_reproducible_per_noise_seed(fixture_generator: torch.nn.Module) -> None:
    import copy

    G = copy.deepcopy(fixture_generator)
    for name, param in G.named_parameters():
        if name.endswith("noise_strength"):  # the fixture's are 0: give the noise something to show
            param.data.fill_(0.5)
    model = model_from_generator(G, "noisy")

    def render(noise_seed: int, mode: str = "random") -> np.ndarray:
        with torch.inference_mode():
            return render_images(model, RenderRequest(model.key, x=2, noise_mode=mode, noise_seed=noise_seed))

    np.testing.assert_array_equal(render(5), render(5))
    assert not np.array_equal(render(5), render(6))
    np.testing.assert_array_equal(render(5, "const"), render(6, "const"))


def test_noise_animation_steps_the_noise_seed_only_for_random_noise() -> None:
    trunc = TruncNoiseState(noise_anim=True)
    trunc.advance()
    assert trunc.noise_seed == 0  # const noise has no seed to move
    trunc.noise_mode = "random"
    trunc.advance()
    trunc.advance()
    assert trunc.noise_seed == 2


def test_seed_animation_moves_the_lattice_point_at_its_speed_and_direction() -> None:
    seeds = SeedsState(x=3.0, y=1.0, anim=True, anim_speed=2.0)
    seeds.advance(0.5)
    assert (seeds.x, seeds.y) == (4.0, 1.0)
    seeds.anim_angle = 90.0
    seeds.advance(0.25)
    assert abs(seeds.x - 4.0) < 1e-9 and abs(seeds.y - 1.5) < 1e-9
    seeds.drag_origin = (4.0, 1.5)  # a drag holds the point where the hand puts it
    seeds.advance(1.0)
    assert abs(seeds.y - 1.5) < 1e-9


def test_reset_restores_defaults_in_place() -> None:
    mix = StyleMixState(enabled=True, seed=42.5, indices=[5], animate=True)
    same = mix
    reset_state(mix)
    assert mix is same and mix == StyleMixState()
    trunc = TruncNoiseState(psi=0.3, noise_mode="random", noise_seed=9)
    reset_state(trunc)
    assert trunc == TruncNoiseState()
