"""``video``: mp4/gif/PNG-frame walks are written, decodable, start on the keyframes and loop.

The walks use the bundled demo generator: its digits are smooth enough for H.264 and a GIF
palette to show the keyframes closely (the fixture's random-weight images are noise-like).
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from core.studio.__main__ import main
from core.studio.video import keyframe_position, slerp
from tests.core.studio.conftest import DEMO

SEEDS = "0-3"  # 2x1 grid: the left cell walks 0 -> 1, the right one 2 -> 3


def _video(network, out, *extra: str) -> None:
    args = ["video", "--network", str(network), "--seeds", SEEDS, "--grid", "2x1", "--seconds", "1", "--fps", "6"]
    assert main([*args, "--out", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def first_keyframes(tmp_path_factory) -> np.ndarray:
    """generate's images of seeds 0 and 2 side by side: what frame 0 must show."""
    folder = tmp_path_factory.mktemp("keys")
    assert main(["generate", "--network", str(DEMO), "--seeds", "0,2", "--outdir", str(folder)]) == 0
    return np.concatenate([np.asarray(PIL.Image.open(folder / f"seed{s:04d}.png")) for s in (0, 2)], axis=1)


def test_mp4_is_decodable_and_starts_on_the_keyframes(first_keyframes, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "walk.mp4"
    _video(DEMO, out, "--loop")
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 6
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == (64, 32)
    first = np.frombuffer(next(reader), dtype=np.uint8).reshape(32, 64, 3)
    reader.close()
    assert np.abs(first.astype(int) - first_keyframes).mean() < 2  # H.264 (yuv420p) is lossy
    assert [p.name for p in tmp_path.iterdir()] == ["walk.mp4"]  # no temporary file left


def test_gif_is_decodable_and_starts_on_the_keyframes(first_keyframes, tmp_path):
    out = tmp_path / "walk.gif"
    _video(DEMO, out, "--kind", "slerp")
    with PIL.Image.open(out) as gif:
        assert gif.n_frames == 6 and gif.size == (64, 32) and gif.info["loop"] == 0
        first = np.asarray(gif.convert("RGB"))
    assert np.abs(first.astype(int) - first_keyframes).mean() < 2  # 256-colour palette per frame
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 6  # a second decoder agrees


def test_png_frames_start_and_end_on_keyframes(first_keyframes, tmp_path):
    _video(DEMO, str(tmp_path / "frames") + "/")
    frames = sorted((tmp_path / "frames").iterdir())
    assert [p.name for p in frames] == [f"frame{i:06d}.png" for i in range(6)]
    first = np.asarray(PIL.Image.open(frames[0]))
    assert np.abs(first.astype(int) - first_keyframes).max() <= 1  # the two cells are one batch
    main(["generate", "--network", str(DEMO), "--seeds", "1,3", "--outdir", str(tmp_path / "last")])
    last_keys = np.concatenate([np.asarray(PIL.Image.open(tmp_path / "last" / f"seed{s:04d}.png")) for s in (1, 3)], 1)
    assert np.abs(np.asarray(PIL.Image.open(frames[-1])).astype(int) - last_keys).max() <= 1


def test_keyframes_from_projected_w_files(fixture_G, fixture_snapshot, tmp_path):
    ws = np.random.RandomState(0).randn(2, fixture_G.num_ws, fixture_G.w_dim).astype(np.float32) * 0.5
    np.savez(tmp_path / "a.npz", w=ws[:1])
    np.savez(tmp_path / "b.npz", w=ws[1:])
    args = ["video", "--network", str(fixture_snapshot), "--keyframes", f"{tmp_path / 'a.npz'},{tmp_path / 'b.npz'}"]
    assert main([*args, "--seconds", "1", "--fps", "3", "--out", str(tmp_path / "f") + "/"]) == 0
    first = np.asarray(PIL.Image.open(tmp_path / "f" / "frame000000.png"))
    with torch.no_grad():
        expected = fixture_G.synthesis(torch.from_numpy(ws[:1]), noise_mode="const")
    expected = (expected.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
    assert np.array_equal(first, expected)


def test_loop_closes_and_open_walks_end_on_the_last_keyframe():
    frames, keys = 12, 3
    # Looping: frame `frames` would be frame 0 again, and the last frames head back to keyframe 0.
    assert keyframe_position(frames, frames, keys, loop=True) == (0, 1, 0.0)
    a, b, t = keyframe_position(frames - 1, frames, keys, loop=True)
    assert (a, b) == (2, 0) and t > 0.8
    assert keyframe_position(0, frames, keys, loop=True) == (0, 1, 0.0)
    # Open: the first frame is keyframe 0, the last exactly keyframe 2.
    assert keyframe_position(0, frames, keys, loop=False) == (0, 1, 0.0)
    assert keyframe_position(frames - 1, frames, keys, loop=False) == (1, 2, 1.0)
    # Smoothstep: each keyframe is approached with zero speed.
    assert keyframe_position(frames // 6, frames, keys, loop=True)[2] == pytest.approx(0.5)


def test_slerp_ends_and_keeps_the_radius():
    gen = torch.Generator().manual_seed(0)
    a, b, center = (torch.randn([4, 8], generator=gen) for _ in range(3))
    torch.testing.assert_close(slerp(a, b, 0.0, center), a)
    torch.testing.assert_close(slerp(a, b, 1.0, center), b)
    # Offsets of equal length stay on their sphere around the centre (lerp would cut inside it).
    b_same = center + (b - center) * ((a - center).norm(dim=-1, keepdim=True) / (b - center).norm(dim=-1, keepdim=True))
    mid = slerp(a, b_same, 0.5, center)
    torch.testing.assert_close((mid - center).norm(dim=-1), (a - center).norm(dim=-1))


def test_keyframes_mix_seeds_and_w_files_in_their_order_and_report_each_frame(fixture_G, fixture_snapshot, tmp_path):
    from core.studio.video import VideoOptions, run_video

    ws = np.random.RandomState(1).randn(1, fixture_G.num_ws, fixture_G.w_dim).astype(np.float32) * 0.5
    np.savez(tmp_path / "a.npz", w=ws)
    main(["generate", "--network", str(fixture_snapshot), "--seeds", "5", "--outdir", str(tmp_path / "g")])
    seen: list[tuple[int, int]] = []
    opts = VideoOptions(network=str(fixture_snapshot), keyframes=(str(tmp_path / "a.npz"), "5"), seconds=1, fps=4,
                        out=str(tmp_path / "f") + "/")  # fmt: skip
    assert run_video(opts, lambda done, total: seen.append((done, total)))[1] == 4
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    frames = sorted((tmp_path / "f").iterdir())
    with torch.no_grad():
        expected = fixture_G.synthesis(torch.from_numpy(ws), noise_mode="const")
    expected = (expected.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].numpy()
    assert np.array_equal(np.asarray(PIL.Image.open(frames[0])), expected)  # the w file first ...
    seed5 = np.asarray(PIL.Image.open(tmp_path / "g" / "seed0005.png"))
    assert np.array_equal(np.asarray(PIL.Image.open(frames[-1])), seed5)  # ... and the open walk ends on seed 5


def test_a_keyframe_seed_out_of_range_is_one_line(fixture_snapshot, tmp_path, capsys):
    args = ["video", "--network", str(fixture_snapshot), "--keyframes", f"3,{2**32}", "--out", str(tmp_path / "w.gif")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(2**32) in err and not list(tmp_path.iterdir())
