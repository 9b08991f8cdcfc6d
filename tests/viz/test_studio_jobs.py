"""The GUI's studio tools: the forms' intents, and core.studio's video and projection run off the GUI thread."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.studio.project import ProjectConfig, ProjectOptions
from core.studio.video import VideoOptions
from viz.panel import ExportVideo, Project
from viz.renderer import RenderRequest, lattice_seed, model_from_generator, render_images, seed_z
from viz.studio_jobs import JobProgress, StudioJob, project_job, video_job
from viz.widgets.projection import ProjectionState, project_intent
from viz.widgets.video import VideoState, export_intent, key_label


def test_the_video_form_becomes_an_export_intent_or_a_one_line_error() -> None:
    state = VideoState(out=" walk.gif ", seeds="0-2,7", grid="2x1", seconds=2.0, fps=10.0, loop=False)
    assert export_intent(state) == ExportVideo(
        out="walk.gif", seeds=(0, 1, 2, 7), grid="2x1", seconds=2.0, fps=10.0, loop=False, kind="lerp"
    )
    assert state.error is None
    state.seeds = "0-x"
    assert export_intent(state) is None
    assert state.error is not None and "0-x" in state.error and "\n" not in state.error


def test_the_projection_form_needs_a_target() -> None:
    state = ProjectionState()
    assert project_intent(state) is None and state.error is not None
    state.target, state.outdir, state.steps, state.vgg = " face.png ", "out/p", 0, ""
    assert project_intent(state) == Project(target="face.png", outdir="out/p", steps=1, seed=303, vgg=None)
    assert state.error is None


def test_a_video_job_writes_the_walk_off_the_gui_thread(tmp_path: Path, fixture_pkl: Path) -> None:
    job = StudioJob("video export")
    out = tmp_path / "walk.gif"
    opts = VideoOptions(network=str(fixture_pkl), device="cpu", out=str(out), seeds=(0, 1), seconds=0.4, fps=5.0)
    assert job.start("writing", video_job(opts))
    assert job.wait(120)
    status = job.status()
    assert not status.running and not status.error and status.done == 1, status.message
    assert status.message == f"wrote 2 frames to {out}"
    with Image.open(out) as gif:
        assert gif.n_frames == 2 and gif.size == (32, 32)


def test_a_failed_job_is_one_line_and_the_next_one_can_start(tmp_path: Path, fixture_pkl: Path) -> None:
    job = StudioJob("video export")
    bad = VideoOptions(network=str(fixture_pkl), out=str(tmp_path / "walk.avi"), seeds=(0,), seconds=0.2, fps=5.0)
    assert job.start("writing", video_job(bad)) and job.wait(60)
    status = job.status()
    assert status.error and status.done == 0 and "walk.avi" in status.message and "\n" not in status.message
    good = VideoOptions(network=str(fixture_pkl), out=f"{tmp_path}/frames/", seeds=(0,), seconds=0.2, fps=5.0)
    assert job.start("writing", video_job(good)) and job.wait(60)
    assert not job.status().error and len(list((tmp_path / "frames").glob("*.png"))) == 1


def test_a_projection_job_writes_projected_w_and_the_view_renders_it(
    tmp_path: Path, fixture_pkl: Path, fixture_generator: torch.nn.Module
) -> None:
    target = tmp_path / "target.png"
    model = model_from_generator(fixture_generator, "fixture")
    with torch.inference_mode():
        Image.fromarray(render_images(model, RenderRequest(model.key, x=11))).save(target)
    opts = ProjectOptions(network=str(fixture_pkl), device="cpu", target=str(target), outdir=str(tmp_path / "p"),
                          config=ProjectConfig(num_steps=3, w_avg_samples=200))  # fmt: skip
    job = StudioJob("projection")
    assert job.start("projecting", project_job(opts)) and job.wait(300)
    status = job.status()
    assert not status.error and status.done == 1 and "projected_w.npz" in status.message, status.message
    ws_file = tmp_path / "p" / "projected_w.npz"
    ws = torch.from_numpy(np.load(ws_file)["w"])
    with torch.inference_mode():
        shown = render_images(model, RenderRequest(model.key, x=5, ws_file=str(ws_file)))
        expected = fixture_generator.synthesis(ws, noise_mode="const")
    pixels = (expected[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    assert np.abs(shown.astype(int) - pixels.astype(int)).max() <= 1


def test_a_projected_w_of_another_network_is_a_one_line_render_error(
    tmp_path: Path, fixture_generator: torch.nn.Module
) -> None:
    bad = tmp_path / "projected_w.npz"
    np.savez(bad, w=np.zeros((1, 3, 7), dtype=np.float32))
    model = model_from_generator(fixture_generator, "fixture")
    with pytest.raises(Exception, match=r"projected w .*\[N, 8, 64\]") as info, torch.inference_mode():
        render_images(model, RenderRequest(model.key, ws_file=str(bad)))
    assert "\n" not in str(info.value)


def test_the_keyframe_strip_adds_moves_removes_and_becomes_the_export(tmp_path: Path) -> None:
    state = VideoState(seeds="0-x")  # the seed list is not read while the strip holds keyframes
    ws = tmp_path / "p" / "projected_w.npz"
    ws.parent.mkdir()
    np.savez(ws, w=np.zeros((1, 8, 64), dtype=np.float32))
    state.add_key("12")
    state.add_w_file(str(ws))
    state.add_key("3")
    assert state.keys == ["12", str(ws), "3"] and state.selected == 2
    state.move_selected(-1)
    assert state.keys == ["12", "3", str(ws)] and state.selected == 1
    state.move_selected(-1)
    state.move_selected(-1)  # already first: stays
    assert state.keys == ["3", "12", str(ws)] and state.selected == 0
    state.selected = 1
    state.add_key("7")  # inserted after the selected keyframe
    assert state.keys == ["3", "12", "7", str(ws)]
    state.remove_selected()
    assert state.keys == ["3", "12", str(ws)] and state.selected == 2
    state.add_w_file(str(tmp_path / "missing.npz"))
    assert state.error is not None and "missing.npz" in state.error and len(state.keys) == 3
    assert [key_label(k) for k in state.keys] == ["seed 3", "seed 12", "w p/projected_w.npz"]
    intent = export_intent(state)
    assert intent is not None and intent.seeds == () and intent.keyframes == ("3", "12", str(ws))
    state.keys.clear()
    assert export_intent(state) is None and "0-x" in str(state.error)  # empty strip: the seed list again


def test_a_video_job_reports_each_frame_written(tmp_path: Path, fixture_pkl: Path) -> None:
    job = StudioJob("video export")
    reports: list[JobProgress] = []
    opts = VideoOptions(network=str(fixture_pkl), device="cpu", out=str(tmp_path / "f") + "/", keyframes=("4", "9"),
                        seconds=1.0, fps=5.0)  # fmt: skip

    def spy(report):  # type: ignore[no-untyped-def]
        def recorded(progress: JobProgress) -> None:
            reports.append(progress)
            assert len(list((tmp_path / "f").glob("*.png"))) == progress.done  # reported once written
            report(progress)

        return recorded

    work = video_job(opts)
    assert job.start("writing", lambda report: work(spy(report))) and job.wait(120)
    assert not job.status().error, job.status().message
    assert [(p.done, p.total, p.unit) for p in reports] == [(i, 5, "frames") for i in range(1, 6)]
    final = job.status().progress
    assert final is not None and final.fraction == 1.0 and final.line(final.started + 1) == "5 / 5 frames"


def test_a_projection_job_reports_steps_distances_and_the_live_image(
    tmp_path: Path, fixture_pkl: Path, fixture_generator: torch.nn.Module
) -> None:
    target = tmp_path / "target.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(target)
    opts = ProjectOptions(network=str(fixture_pkl), device="cpu", target=str(target), outdir=str(tmp_path / "p"),
                          config=ProjectConfig(num_steps=6, w_avg_samples=100))  # fmt: skip
    job = StudioJob("projection")
    reports: list[JobProgress] = []
    work = project_job(opts)
    assert job.start("projecting", lambda report: work(lambda p: (reports.append(p), report(p)))) and job.wait(300)
    assert not job.status().error, job.status().message
    assert [(p.done, p.total, p.unit) for p in reports] == [(i, 6, "steps") for i in range(1, 7)]
    proj = json.loads((tmp_path / "p" / "proj.json").read_text())
    assert reports[0].distance == pytest.approx(proj["distance_first"])
    assert reports[-1].distance == pytest.approx(proj["distance_last"])
    image = reports[-1].image  # the last step always carries the image: target | projection
    assert image is not None and image.shape == (32, 64, 3) and image.dtype == np.uint8
    written_target = np.asarray(Image.open(tmp_path / "p" / "target.png"))
    assert np.array_equal(image[:, :32], written_target)
    assert reports[0].image is not None and not np.array_equal(reports[0].image[:, 32:], image[:, 32:])


def test_a_progress_line_says_the_time_left_from_the_rate_after_the_first_unit() -> None:
    p = JobProgress(done=5, total=105, unit="steps", distance=0.25, started=100.0)
    assert p.line(102.0) == "5 / 105 steps, distance 0.25, 50 s left"  # 4 steps in 2 s, 100 to go
    assert JobProgress(1, 10, "frames", started=100.0).line(101.0) == "1 / 10 frames"


def test_a_projected_w_mixes_into_the_seeds_as_the_mix_seed_would(
    tmp_path: Path, fixture_generator: torch.nn.Module
) -> None:
    model = model_from_generator(fixture_generator, "fixture")
    ws_file = tmp_path / "projected_w.npz"
    with torch.inference_mode():
        w = fixture_generator.mapping(torch.from_numpy(np.random.RandomState(77).randn(1, 64)).float(), None)
    np.savez(ws_file, w=w.numpy().astype(np.float32))
    base = RenderRequest(model.key, x=3, mix_seed=1.0, mix_indices=(0, 1, 2))
    with torch.inference_mode():
        by_seed = render_images(model, base)
        by_file = render_images(model, replace(base, mix_ws_file=str(ws_file)))
        own = fixture_generator.mapping(torch.from_numpy(seed_z(lattice_seed(3, 0), 64)[None]).float(), None)
        own[:, :3] = w[:, :3]
        expected = fixture_generator.synthesis(own, noise_mode="const")
    pixels = (expected[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).numpy()
    assert np.abs(by_file.astype(int) - pixels.astype(int)).max() <= 1
    assert np.abs(by_file.astype(int) - by_seed.astype(int)).mean() > 5  # the file, not the mix seed, was used
    with torch.inference_mode():  # style mixing off: nothing is mixed in, whatever the file
        plain = render_images(model, replace(base, mix_seed=None, mix_ws_file=str(ws_file)))
        assert np.array_equal(plain, render_images(model, RenderRequest(model.key, x=3)))
