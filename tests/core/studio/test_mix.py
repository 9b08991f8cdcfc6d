"""``mix``: the public style_mixing.py grid (reference in data/generate_ref.npz, see test_generate)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from core.io.images import to_hwc
from core.studio.__main__ import main
from core.studio.mix import seed_ws, style_mix
from tests.core.studio.conftest import assert_public_pixels


def _ids(values: np.ndarray) -> str:
    return ",".join(str(int(v)) for v in values)


def test_mix_matches_public_style_mixing_py(fixture_snapshot, reference, tmp_path):
    out, cells = tmp_path / "grid.png", tmp_path / "cells"
    args = ["mix", "--network", str(fixture_snapshot), "--rows", _ids(reference["mix_rows"])]
    args += ["--cols", _ids(reference["mix_cols"]), "--styles", _ids(reference["mix_styles"]), "--trunc", "0.7"]
    assert main([*args, "--noise-mode", "const", "--out", str(out), "--outdir", str(cells)]) == 0
    assert_public_pixels(np.asarray(PIL.Image.open(out)), reference["mix_grid_psi07_const"], "grid.png")
    rows, cols = reference["mix_rows"], reference["mix_cols"]
    names = {f"{r}-{c}.png" for r in rows for c in cols} | {f"{s}-{s}.png" for s in (*rows, *cols)}
    assert {p.name for p in cells.iterdir()} == names


def test_mix_layout_and_cells_are_the_mixed_ws(fixture_G):
    rows, cols, styles = [85, 100], [55, 821, 1789], [0, 1, 2, 3]
    label = torch.zeros([1, 0])
    result = style_mix(fixture_G, rows, cols, styles, label, 1.0, "const")
    grid, r = result.grid, 32
    assert grid.shape == (r * 3, r * 4, 3)
    assert not grid[:r, :r].any()  # the corner is empty
    with torch.no_grad():
        ws = seed_ws(fixture_G, list(set(rows + cols)), label, 1.0)  # the same mapping batch as style_mix
        for k, col in enumerate(cols, start=1):
            assert np.array_equal(grid[:r, k * r : (k + 1) * r], result.images[(col, col)])
            expected = to_hwc(fixture_G.synthesis(ws[col].unsqueeze(0), noise_mode="const"))[0]
            assert np.abs(expected.astype(int) - result.images[(col, col)]).max() <= 1  # batched there
        for i, row in enumerate(rows, start=1):
            assert np.array_equal(grid[i * r : (i + 1) * r, :r], result.images[(row, row)])
            for k, col in enumerate(cols, start=1):
                mixed = ws[row].clone()
                mixed[styles] = ws[col][styles]
                expected = to_hwc(fixture_G.synthesis(mixed.unsqueeze(0), noise_mode="const"))[0]
                assert np.array_equal(grid[i * r : (i + 1) * r, k * r : (k + 1) * r], expected)
