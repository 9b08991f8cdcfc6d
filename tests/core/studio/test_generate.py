"""``generate``: the same pixels as the public generate.py, file names, grid, batching.

The reference ``data/generate_ref.npz`` was made once, by running the public
NVlabs/stylegan2-ada-pytorch code (its ``training.networks.Generator`` built with the fixture's
G_kwargs, the fixture's G tensors loaded strictly) on the CPU (torch 2.13, float32) through
generate.py's seed -> z -> image lines: ``z = RandomState(seed).randn(1, z_dim)``,
``G(z, label, truncation_psi, noise_mode='const')``, ``(x * 127.5 + 128).clamp(0, 255).to(uint8)``,
one seed at a time, for the seeds in ``seeds`` at psi 0.7 (``img_psi07_const``) and 1
(``img_psi10_const``). ``mix_grid_psi07_const`` is style_mixing.py's grid.png for rows
``mix_rows``, columns ``mix_cols``, styles ``mix_styles`` at psi 0.7, noise const. Only the
arrays are stored; the public code is not part of this repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from core.networks import Generator
from core.networks.checkpoint import save_checkpoint
from core.studio.__main__ import main
from core.studio.common import parse_number_list
from core.studio.generate import generate_images
from tests.core.studio.conftest import assert_public_pixels

PSI = {"psi07": 0.7, "psi10": 1.0}


def _png(path: Path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path))


def _seeds_arg(seeds: np.ndarray) -> str:
    return ",".join(str(int(s)) for s in seeds)


@pytest.mark.parametrize("source", ["snapshot", "pkl"])
@pytest.mark.parametrize("psi", sorted(PSI))
def test_generate_matches_public_generate_py(source, psi, fixture_snapshot, fixture_pkl, reference, tmp_path):
    network = fixture_snapshot if source == "snapshot" else fixture_pkl
    args = ["generate", "--network", str(network), "--seeds", _seeds_arg(reference["seeds"])]
    assert main([*args, "--trunc", str(PSI[psi]), "--noise-mode", "const", "--outdir", str(tmp_path)]) == 0
    for seed, expected in zip(reference["seeds"], reference[f"img_{psi}_const"], strict=True):
        assert_public_pixels(_png(tmp_path / f"seed{int(seed):04d}.png"), expected, f"seed {seed}")


def test_batched_seeds_match_one_at_a_time(fixture_G):
    """Batches run the same network on the same z; only kernel rounding may differ.

    CPU kernels (oneDNN convolutions, GEMM) are not batch-invariant: the float outputs of a batch
    differ from one-at-a-time by ~1e-5, which moves about 2 in 100,000 pixels by one level. So
    ``--batch 1`` (the default) is the public computation, bit for bit; larger batches promise this.
    """
    seeds = list(range(12))
    label = torch.zeros([1, 0])
    single = np.stack(list(generate_images(fixture_G, seeds, label, 0.7, "const", batch=1)))
    batched = np.stack(list(generate_images(fixture_G, seeds, label, 0.7, "const", batch=4)))
    ragged = np.stack(list(generate_images(fixture_G, seeds, label, 0.7, "const", batch=5)))  # 5, 5, 2
    for other in (batched, ragged):
        diff = np.abs(other.astype(int) - single)
        assert diff.max() <= 1
        assert (diff > 0).mean() < 1e-3  # measured: ~2e-5


def test_run_directory_means_its_newest_snapshot(fixture_G, reference, tmp_path):
    snapshots = tmp_path / "run" / "snapshots"
    save_checkpoint(snapshots / "network-snapshot-000004", G_ema=Generator(**fixture_G.init_kwargs))  # older
    save_checkpoint(snapshots / "network-snapshot-000012", G_ema=fixture_G)
    args = ["generate", "--network", str(tmp_path / "run"), "--seeds", _seeds_arg(reference["seeds"])]
    assert main([*args, "--trunc", "0.7", "--outdir", str(tmp_path / "out")]) == 0
    for seed, expected in zip(reference["seeds"], reference["img_psi07_const"], strict=True):
        assert_public_pixels(_png(tmp_path / "out" / f"seed{int(seed):04d}.png"), expected, f"seed {seed}")


def test_grid_is_row_major_with_black_empty_cells(fixture_snapshot, tmp_path):
    args = ["generate", "--network", str(fixture_snapshot), "--seeds", "3,1,2", "--grid", "2x2"]
    assert main([*args, "--outdir", str(tmp_path), "--batch", "2"]) == 0
    grid = _png(tmp_path / "grid.png")
    assert grid.shape == (64, 64, 3)
    cells = [grid[:32, :32], grid[:32, 32:], grid[32:, :32], grid[32:, 32:]]
    for cell, seed in zip(cells, (3, 1, 2), strict=False):
        assert np.array_equal(cell, _png(tmp_path / f"seed{seed:04d}.png"))
    assert not cells[3].any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "seed0001.png", "seed0002.png", "seed0003.png"]


def test_seed_syntax():
    assert parse_number_list("0-3,42, 7") == [0, 1, 2, 3, 42, 7]
    assert parse_number_list("4294967295") == [2**32 - 1]


def test_conditional_network_takes_its_class_in_every_command(tmp_path):
    G = Generator(z_dim=8, c_dim=3, w_dim=8, img_resolution=8, img_channels=3, synthesis_kwargs={"channel_base": 64})
    with torch.no_grad():
        G.mapping.embed.weight.mul_(10)  # make the label matter visibly in a random network
    net = str(save_checkpoint(tmp_path / "cond", G_ema=G))
    for cls in (0, 2):
        assert (
            main(
                [
                    "generate",
                    "--network",
                    net,
                    "--seeds",
                    "5",
                    "--class",
                    str(cls),
                    "--outdir",
                    str(tmp_path / f"c{cls}"),
                ]
            )
            == 0
        )
    assert not np.array_equal(_png(tmp_path / "c0" / "seed0005.png"), _png(tmp_path / "c2" / "seed0005.png"))
    mix = ["mix", "--network", net, "--rows", "1", "--cols", "2", "--styles", "0-1", "--class", "1"]
    assert main([*mix, "--out", str(tmp_path / "mix.png")]) == 0
    video = ["video", "--network", net, "--seeds", "1,2", "--seconds", "1", "--fps", "2", "--class", "1"]
    assert main([*video, "--out", str(tmp_path / "frames") + "/"]) == 0
    assert len(list((tmp_path / "frames").iterdir())) == 2
