"""What the GUI shows, as JSON: ``launch_viz.py --debug-state FILE`` writes it every few frames.

Tests read it to check the real app (which panel shows what, where each control is drawn, what
the newest render was), and a user can attach it to a bug report. A panel with a
``debug_summary()`` is listed under its name without any change here.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from viz.app import App

__all__ = ["describe_app"]


def describe_app(app: App) -> dict[str, Any]:
    """A JSON-able picture of what is on screen, for tests and bug reports."""
    state: dict[str, Any] = {
        "frame": app.frame,
        "idle": app.idle,
        "view": app.view,
        "scale": app.scale,
        "window": [app.host.width, app.host.height],
        "model": None,
        "snapshot": {
            "source": app.snapshot.source,
            "error": app.snapshot.error,
            "loading": app.snapshot.loading,
            "recent": app.snapshot.recent,
        },
        "seed": app.seeds.seed,
        "lattice": [app.seeds.x, app.seeds.y],
        "generator_image": _image_summary(app.gen.result),
        "perf": app.perf.summary(),
        "rects": app.rects,
        "status": app.status_message,
    }
    state["layers"] = _layers_summary(app.layers, app.gen.result)
    state["stylemix"] = _stylemix_summary(app.stylemix, app.gen.submitted)
    state["noise"] = {
        "mode": app.trunc.noise_mode, "seed": app.trunc.noise_seed, "animate": app.trunc.noise_anim,
    }
    state["seed_anim"] = {"on": app.seeds.anim, "speed": app.seeds.anim_speed, "angle": app.seeds.anim_angle}
    from viz.studio_jobs import progress_summary

    video = app.video.status()
    form = next(panel.state for panel in app.panels if panel.name == "video")
    state["video"] = {
        "running": video.running, "message": video.message, "error": video.error, "form_error": form.error,
        "out": form.out, "seeds": form.seeds, "grid": form.grid, "seconds": form.seconds, "fps": form.fps,
        "loop": form.loop, "kind": form.kind, "keys": list(form.keys), "selected": form.selected,
        "progress": progress_summary(video.progress),
    }  # fmt: skip
    proj, job = app.projected, app.projection.status()
    state["projection"] = {
        "running": job.running, "message": job.message, "error": job.error, "done": job.done,
        "form_error": proj.error, "target": proj.target, "outdir": proj.outdir, "steps": proj.steps,
        "seed": proj.seed, "vgg": proj.vgg, "show": proj.show, "mix_source": proj.mix_source,
        "shown": app.gen.result.request.ws_file if app.gen.result is not None else None,
        "progress": progress_summary(job.progress), "curve_points": len(proj.curve),
    }  # fmt: skip
    state["augment"] = _augment_summary(app.augment)
    state["monitor"] = _monitor_summary(app.monitor, app.client)
    state["control"] = app.session.summary()
    for panel in app.panels:  # a panel that reports what it shows (debug_summary) is listed by its name
        if hasattr(panel, "debug_summary"):
            state.setdefault(panel.name, panel.debug_summary())
    if app.model is not None:
        m = app.model
        state["model"] = {
            "path": m.path,
            "resolution": m.img_resolution,
            "num_ws": m.num_ws,
            "c_dim": m.c_dim,
        }
    return state


def _layers_summary(layers: Any, result: Any) -> dict[str, Any]:
    """The Layers panel's choice and what the newest render made of it (shown layer, stats, error)."""
    view = result.layers if result is not None else None
    out: dict[str, Any] = {
        "enabled": layers.enabled, "selected": layers.layer, "mode": layers.mode, "channels": layers.channels,
        "norm": layers.norm, "std_k": layers.std_k, "gain": layers.gain, "fft": layers.fft,
        "shown": None, "error": None, "names": [], "shapes": [], "stats": None,
    }  # fmt: skip
    if view is not None:
        out.update(
            shown=view.name, error=view.error, names=[i.name for i in view.layers],
            shapes=[list(i.shape) for i in view.layers], shown_channels=view.shown_channels,
        )  # fmt: skip
        if view.all_channels is not None and view.selected is not None:
            out["stats"] = {"all": vars(view.all_channels), "selected": vars(view.selected)}
    return out


def _stylemix_summary(mix: Any, submitted: Any) -> dict[str, Any]:
    return {
        "enabled": mix.enabled, "seed": mix.seed, "indices": list(mix.indices), "animate": mix.animate,
        "speed": mix.speed, "requested": list(submitted.mix_indices) if submitted is not None else [],
    }  # fmt: skip


def _augment_summary(aug: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "p": aug.p,
        "preset": aug.preset,
        "seed": aug.seed,
        "dataset": aug.dataset,
        "error": aug.error,
        "hovered": aug.hovered,
        "sent_seq": aug.sent_seq,
        "sent_kimg": aug.sent_kimg,
        "md5": None,
    }
    if aug.preview is not None:
        pv = aug.preview
        out["md5"] = hashlib.md5(pv.augmented.tobytes()).hexdigest()
        out["reals_md5"] = hashlib.md5(pv.reals.tobytes()).hexdigest()
        out["fired"] = [sorted(e) for e in pv.explain]
        out["preview_p"] = pv.spec.p
    return out


def _monitor_summary(mon: Any, client: Any) -> dict[str, Any]:
    from viz.widgets.training_monitor import debug_summary

    return {
        **debug_summary(mon, client.run_dir),
        "run_dir": str(client.run_dir) if client.run_dir else None,
        "events": mon.events,
        "points": {k: len(s.kimg) for k, s in mon.series.items()},
        "target_points": len(mon.target.kimg),
        "kimg": mon.kimg,
        "status": mon.status.state if mon.status else None,
        "controls": [c.get("seq") for c in mon.controls],
        "fakes": str(mon.fakes_path) if mon.fakes_path else None,
        "reals_augmented": str(mon.reals_aug_path) if mon.reals_aug_path else None,
        "log_lines": len(mon.log_tail),
    }


def _image_summary(result: Any) -> dict[str, Any] | None:
    if result is None or result.image is None:
        return None
    img = result.image
    return {
        "seeds": result.request.seeds(),
        "layer": result.request.layer,
        "ws_file": result.request.ws_file,
        "mix_ws_file": result.request.mix_ws_file,
        "grid": [result.request.grid_w, result.request.grid_h],
        "shape": list(img.shape),
        "mean": float(img.mean()),
        "std": float(img.std()),
        "md5": hashlib.md5(img.tobytes()).hexdigest(),
    }
