"""Our checkpoint format: round trips, atomicity, validation, resume state, run directories."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from core.networks import Discriminator, Generator
from core.networks.checkpoint import (
    FORMAT_NAME,
    CheckpointError,
    load_checkpoint,
    load_resume_state,
    save_checkpoint,
    save_resume_state,
    snapshot_paths,
)
from core.networks.sources import load_any
from core.rundir.layout import kept_snapshots, latest_snapshot

REPO = Path(__file__).resolve().parents[3]
TINY_G = dict(
    z_dim=8, c_dim=3, w_dim=8, img_resolution=8, img_channels=3,
    mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 64, "channel_max": 8, "conv_clamp": 256},
)
TINY_D = dict(c_dim=3, img_resolution=8, img_channels=3, channel_base=64, channel_max=8, conv_clamp=256)


def _nets(seed: int = 0) -> tuple[Generator, Discriminator, Generator]:
    torch.manual_seed(seed)
    G, D, G_ema = Generator(**TINY_G), Discriminator(**TINY_D), Generator(**TINY_G)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        G_ema.mapping.w_avg.normal_()
    return G.eval(), D.eval(), G_ema.eval()


def _outputs(G: torch.nn.Module, D: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    z = torch.randn([2, 8], generator=gen)
    c = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).float()
    with torch.no_grad():
        img = G(z, c, truncation_psi=0.7, noise_mode="const")
        return img, D(img, c)


def test_round_trip_is_bit_exact_and_keeps_metadata(tmp_path: Path) -> None:
    G, D, G_ema = _nets()
    opts = {"batch": 4, "gamma": 0.01, "cfg": "auto"}
    json_path = save_checkpoint(tmp_path / "network-snapshot-000012", G=G, D=D, G_ema=G_ema, kimg=12.5, p=0.25,
                                training_options=opts, dataset={"name": "tiny", "size": 10})
    assert json_path == tmp_path / "network-snapshot-000012.json"
    for form in ("network-snapshot-000012", "network-snapshot-000012.json", "network-snapshot-000012.safetensors"):
        ckpt = load_checkpoint(tmp_path / form)
        for name in ("G", "D", "G_ema"):
            ours, theirs = getattr(ckpt, name).state_dict(), locals()[name].state_dict()
            assert ours.keys() == theirs.keys()
            assert all(torch.equal(ours[k], theirs[k]) for k in ours)
        for got, want in zip(_outputs(ckpt.G_ema, ckpt.D), _outputs(G_ema, D), strict=True):
            assert torch.equal(got, want)
        assert ckpt.meta["kimg"] == 12.5 and ckpt.meta["p"] == 0.25
        assert ckpt.meta["training_options"] == opts and ckpt.meta["dataset"]["size"] == 10
        assert ckpt.meta["versions"]["torch"] == torch.__version__
        assert ckpt.path == json_path


def test_json_layout(tmp_path: Path) -> None:
    G, D, _ = _nets()
    save_checkpoint(tmp_path / "s", G=G, D=D, kimg=1)
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["format"] == FORMAT_NAME and doc["format_version"] == 1
    assert doc["networks"]["G"] == {"class_name": "Generator", "init_kwargs": G.init_kwargs}
    assert doc["networks"]["D"]["class_name"] == "Discriminator"
    assert set(doc["versions"]) == {"ada-studio", "torch", "python"}
    with safetensors.safe_open(str(tmp_path / "s.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert f.metadata()["snapshot_id"] == doc["snapshot_id"]
    assert keys == {f"G.{k}" for k in G.state_dict()} | {f"D.{k}" for k in D.state_dict()}


def test_absent_networks_stay_none(tmp_path: Path) -> None:
    G, _, _ = _nets()
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "g", G_ema=G))
    assert ckpt.G is None and ckpt.D is None and ckpt.G_ema is not None and ckpt.augment_settings is None


def test_half_precision_is_preserved_in_file(tmp_path: Path) -> None:
    G, _, _ = _nets()
    G16 = Generator(**TINY_G).to(torch.bfloat16)
    G16.load_state_dict(G.state_dict())
    save_checkpoint(tmp_path / "h", G=G16)
    with safetensors.safe_open(str(tmp_path / "h.safetensors"), "pt") as f:
        assert f.get_tensor("G.mapping.fc0.weight").dtype == torch.bfloat16
    loaded = load_checkpoint(tmp_path / "h").G
    want = G16.mapping.fc0.weight.float()
    assert loaded.mapping.fc0.weight.dtype == torch.float32 and torch.equal(loaded.mapping.fc0.weight, want)


def test_augment_settings_and_tensors_round_trip(tmp_path: Path) -> None:
    G, _, _ = _nets()
    settings = {"xflip": 1.0, "rotate90": 1.0, "p": 0.3}
    state = {"p": torch.tensor(0.3), "Hz_geom": torch.arange(12.0)}
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "a", G=G, augment_pipe=settings, augment_state=state))
    assert ckpt.augment_settings == settings
    assert set(ckpt.augment_state) == {"p", "Hz_geom"} and torch.equal(ckpt.augment_state["Hz_geom"], state["Hz_geom"])


def test_metadata_must_be_json(tmp_path: Path) -> None:
    G, _, _ = _nets()
    with pytest.raises(CheckpointError, match="metadata cannot be stored as JSON"):
        save_checkpoint(tmp_path / "m", G=G, kimg=object())
    with pytest.raises(CheckpointError, match="nothing to save"):
        save_checkpoint(tmp_path / "m", kimg=1)
    with pytest.raises(CheckpointError, match="only Generator, Discriminator"):
        save_checkpoint(tmp_path / "m", G=torch.nn.Linear(2, 2))
    assert list(tmp_path.iterdir()) == []


def test_device_argument(tmp_path: Path) -> None:
    G, _, _ = _nets()
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "d", G=G), device="meta")
    assert ckpt.G.mapping.fc0.weight.device.type == "meta"


# --------------------------------------------------------------------------------- atomicity


def test_crash_before_json_leaves_incomplete_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    G, D, _ = _nets()
    save_checkpoint(tmp_path / "s", G=G, D=D, kimg=1)
    real_replace = os.replace

    def crash_on_json(src: Any, dst: Any) -> None:
        if str(dst).endswith(".json"):
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_json)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path / "s", G=G, kimg=2)
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors"]


def test_crash_writing_tensors_leaves_nothing_loadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    G, _, _ = _nets()

    def crash(src: Any, dst: Any) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "s", G=G)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match="no snapshot found"):
        load_checkpoint(tmp_path / "s")


def test_killed_writer_never_yields_a_torn_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process rewriting one snapshot in a loop is killed; every load is complete or refused."""
    import core.networks.checkpoint as ckpt_module

    # Every other load is a slow reader: it waits 30 ms between the JSON and the tensors, so a
    # rewrite lands in between (the writer pauses 20 ms between writes). Without that, the two
    # reads are too close for a rewrite to fall between them and a mixed pair would go unseen.
    slow = [False]
    read_tensors = ckpt_module.read_tensor_file

    def maybe_slow_read(path: Path) -> Any:
        if slow[0]:
            time.sleep(0.03)
        return read_tensors(path)

    monkeypatch.setattr(ckpt_module, "read_tensor_file", maybe_slow_read)
    stem = tmp_path / "live"
    script = textwrap.dedent(
        f"""
        import time
        import torch
        from core.networks import Generator
        from core.networks.checkpoint import save_checkpoint
        G = Generator(**{TINY_G!r})
        i = 0
        while True:
            with torch.no_grad():
                G.mapping.w_avg.fill_(i)
            save_checkpoint({str(stem)!r}, G_ema=G, augment_pipe={{"xflip": 1}},
                            augment_state={{"pad": torch.full([300_000], float(i))}}, i=i)
            i += 1
            if i == 2:
                print("ready", flush=True)
            # A short gap between writes, so the reader also meets complete snapshots (without it a
            # fast writer can keep every read landing mid-write and the test proves nothing).
            time.sleep(0.02)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    loads, attempts, deadline = 0, 0, time.monotonic() + 120

    def load_once() -> int:
        slow[0] = not slow[0]
        try:
            ckpt = load_checkpoint(stem)
        except CheckpointError:
            return 0
        i = ckpt.meta["i"]
        assert torch.all(ckpt.G_ema.mapping.w_avg == i) and torch.all(ckpt.augment_state["pad"] == i)
        return 1

    try:
        # While it writes: at least 30 attempts and 3 complete loads (so the test proves something,
        # however a loaded machine interleaves the two processes); a loud failure at the deadline.
        while attempts < 30 or loads < 3:
            assert time.monotonic() < deadline, f"only {loads} complete loads in {attempts} attempts"
            loads += load_once()
            attempts += 1
        proc.kill()
        proc.wait()
        for _ in range(10):  # killed at an arbitrary point: still complete or refused
            load_once()
    finally:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------------- validation


def _saved(tmp_path: Path) -> tuple[Path, Path]:
    G, D, _ = _nets()
    save_checkpoint(tmp_path / "s", G=G, D=D, kimg=3)
    return snapshot_paths(tmp_path / "s")


def _edit_json(path: Path, edit: Any) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_unknown_version(tmp_path: Path) -> None:
    _, json_path = _saved(tmp_path)
    _edit_json(json_path, lambda d: d.update(format_version=99))
    with pytest.raises(CheckpointError, match=r"s\.json: .*format version 99 is not supported"):
        load_checkpoint(json_path)


def test_not_our_format_and_invalid_json(tmp_path: Path) -> None:
    _, json_path = _saved(tmp_path)
    json_path.write_text('{"format": "something-else"}')
    with pytest.raises(CheckpointError, match="not an ada-studio-checkpoint file"):
        load_checkpoint(json_path)
    json_path.write_text('{"format": "ada-st')
    with pytest.raises(CheckpointError, match=r"s\.json: invalid JSON"):
        load_checkpoint(json_path)


def _rewrite_tensors(st_path: Path, edit: Any) -> None:
    with safetensors.safe_open(str(st_path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    edit(tensors)
    safetensors.torch.save_file(tensors, str(st_path), metadata=meta)


def test_missing_extra_and_misshaped_tensors(tmp_path: Path) -> None:
    st_path, json_path = _saved(tmp_path)
    _rewrite_tensors(st_path, lambda t: t.pop("D.b4.out.bias"))
    with pytest.raises(CheckpointError, match=r"missing tensor\(s\) for D: D\.b4\.out\.bias"):
        load_checkpoint(json_path)
    _rewrite_tensors(st_path, lambda t: t.update({"D.b4.out.bias": torch.zeros(1), "D.extra": torch.zeros(1)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) for D: D\.extra"):
        load_checkpoint(json_path)
    _rewrite_tensors(st_path, lambda t: (t.pop("D.extra"), t.update({"X.y": torch.zeros(1)})))
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) not described .*X\.y"):
        load_checkpoint(json_path)
    _rewrite_tensors(st_path, lambda t: (t.pop("X.y"), t.update({"G.mapping.w_avg": torch.zeros(9)})))
    with pytest.raises(CheckpointError, match=r"G\.mapping\.w_avg has shape \[9\].* expects \[8\]"):
        load_checkpoint(json_path)


def test_mismatched_pair_and_corrupt_tensor_file(tmp_path: Path) -> None:
    st_path, json_path = _saved(tmp_path)
    _edit_json(json_path, lambda d: d.update(snapshot_id="0" * 32))
    with pytest.raises(CheckpointError, match="belongs to another write"):
        load_checkpoint(json_path)
    st_path, json_path = _saved(tmp_path)
    data = st_path.read_bytes()
    for cut in (0, 7, 100, len(data) // 2, len(data) - 1):
        st_path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"s\.safetensors: damaged safetensors file"):
            load_checkpoint(json_path)
    st_path.write_bytes(b"\xff" * len(data))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(json_path)


def test_class_names_come_only_from_the_registry(tmp_path: Path) -> None:
    _, json_path = _saved(tmp_path)
    _edit_json(json_path, lambda d: d["networks"]["G"].update(class_name="os.system"))
    with pytest.raises(CheckpointError, match="class 'os.system'; only Generator, Discriminator"):
        load_checkpoint(json_path)
    _, json_path = _saved(tmp_path)
    _edit_json(json_path, lambda d: d["networks"]["G"]["init_kwargs"].update(bogus=1))
    with pytest.raises(CheckpointError, match=r"cannot build G = Generator\(\*\*init_kwargs\)"):
        load_checkpoint(json_path)


def test_resume_file_is_not_a_snapshot(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="resume-state file"):
        load_checkpoint(tmp_path / "x.resume.json")


# --------------------------------------------------------------------------------- resume state


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}.{i}")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def test_adam_state_round_trips_exactly(tmp_path: Path) -> None:
    G, _, _ = _nets()
    opt = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99), eps=1e-8)
    for _ in range(2):
        opt.zero_grad()
        G(torch.randn(2, 8), torch.eye(3)[:2], noise_mode="const").square().mean().backward()
        opt.step()
    path = save_resume_state(tmp_path / "network-snapshot-000004", {"G_opt": opt.state_dict(), "kimg": 4.0})
    assert path.name == "network-snapshot-000004.resume.json"
    loaded = load_resume_state(tmp_path / "network-snapshot-000004.json")
    _assert_same(loaded["G_opt"], opt.state_dict(), "G_opt")
    with safetensors.safe_open(str(tmp_path / "network-snapshot-000004.resume.safetensors"), "pt") as f:
        assert "G_opt.state.0.exp_avg" in set(f.keys())

    # The restored optimizer takes the very same next step.
    G2 = Generator(**TINY_G).eval()  # same mode as G: train mode picks another modconv path
    G2.load_state_dict(G.state_dict())
    opt2 = torch.optim.Adam(G2.parameters(), lr=0.1)
    opt2.load_state_dict(loaded["G_opt"])
    for model, o in ((G, opt), (G2, opt2)):
        o.zero_grad()
        model(torch.ones(2, 8), torch.eye(3)[:2], noise_mode="const").square().mean().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(G.parameters(), G2.parameters(), strict=True))


def test_rng_states_and_odd_values_round_trip(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    state = {
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "numpy_generator": np.random.default_rng(7).bit_generator.state,
        "python_rng": random.getstate(),
        "blob": b"\x00\xffbytes",
        "floats": [float("nan"), float("inf"), -0.0, 1e-300],
        "int_keys": {0: "a", 1: (2, 3)},
        "tag_like": {"__tuple__": 1},
        "np_scalar": np.float32(0.5),
        "ada": {"p": 0.25, "history": [[0.0, 0.1], [4.0, 0.2]], "sign_sum": torch.tensor(3.0)},
        "nested_tensors": {"a": {"b": torch.arange(3, dtype=torch.int64)}},
    }
    save_resume_state(tmp_path / "r", state)
    loaded = load_resume_state(tmp_path / "r.resume.json")
    _assert_same(loaded, state)
    torch.set_rng_state(loaded["torch_rng"])
    np.random.set_state(loaded["numpy_rng"])
    random.setstate(loaded["python_rng"])
    draws = (torch.rand(3), np.random.rand(3), random.random())
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    assert torch.equal(draws[0], torch.rand(3)) and np.array_equal(draws[1], np.random.rand(3))
    assert draws[2] == random.random()


def test_resume_state_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"resume state bad\.x is a object"):
        save_resume_state(tmp_path / "r", {"bad": {"x": object()}})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match="resume state not found"):
        load_resume_state(tmp_path / "r")
    save_resume_state(tmp_path / "r", {"t": torch.zeros(2)})
    _edit_json(tmp_path / "r.resume.json", lambda d: d.update(format_version=2))
    with pytest.raises(CheckpointError, match="version 2 is not supported"):
        load_resume_state(tmp_path / "r")


# --------------------------------------------------------------------------------- run directories


def test_latest_snapshot_and_load_any_on_run_dirs(tmp_path: Path) -> None:
    run = tmp_path / "00000-run"
    with pytest.raises(CheckpointError, match="no snapshot yet"):
        load_any(run.parent)
    (run / "snapshots").mkdir(parents=True)
    assert latest_snapshot(run) is None
    with pytest.raises(CheckpointError, match="no snapshot yet"):
        load_any(run)
    G, _, _ = _nets()
    snaps = run / "snapshots"
    for kimg in (40, 200, 120):
        save_checkpoint(snaps / f"network-snapshot-{kimg:06d}", G_ema=G, kimg=kimg)
    save_resume_state(snaps / "network-snapshot-000999", {"kimg": 999})
    assert latest_snapshot(run) == snaps / "network-snapshot-000200.json"
    save_checkpoint(snaps / "network-snapshot-000036.736", G_ema=G, kimg=36.736)  # a stop between ticks
    tags = ((36.736, "000036.736"), (40, "000040"), (120, "000120"), (200, "000200"))
    assert kept_snapshots(run) == [(k, snaps / f"network-snapshot-{t}.json") for k, t in tags]
    assert load_any(run).meta["kimg"] == 200

    (snaps / "latest.json").write_text(json.dumps({"snapshot": "network-snapshot-000120", "kimg": 120}))
    assert latest_snapshot(run) == snaps / "network-snapshot-000120.json"
    assert load_any(run).meta["kimg"] == 120
    (snaps / "latest.json").write_text(json.dumps({"snapshot": "network-snapshot-000500"}))
    assert latest_snapshot(run) == snaps / "network-snapshot-000200.json"  # falls back to newest
    (snaps / "latest.json").write_text(json.dumps({"snapshot": "../../elsewhere"}))
    assert latest_snapshot(run) == snaps / "network-snapshot-000200.json"


def test_load_any_on_snapshot_forms(tmp_path: Path) -> None:
    G, _, _ = _nets()
    save_checkpoint(tmp_path / "s", G=G, kimg=5)
    for form in ("s", "s.json", "s.safetensors"):
        assert load_any(tmp_path / form).meta["kimg"] == 5
    with pytest.raises(CheckpointError, match="no snapshot found"):
        load_any(tmp_path / "nothing")


def test_augment_pipe_round_trip(tmp_path: Path) -> None:
    augment = pytest.importorskip("core.augment")
    if not hasattr(augment, "AugmentPipe"):
        pytest.skip("core.augment.AugmentPipe not available yet")
    pipe = augment.AugmentPipe.from_preset("bgc", p=0.3, scale_std=0.3)
    G, _, _ = _nets()
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "a", G=G, augment_pipe=pipe, p=0.3))
    assert isinstance(ckpt.augment_pipe, augment.AugmentPipe)
    assert ckpt.augment_pipe.settings() == pipe.settings() == ckpt.augment_settings
    assert ckpt.meta["ignored"] == []


def test_loaded_tensors_do_not_map_the_file(tmp_path: Path) -> None:
    """Overwriting the file in place after loading must not change what was loaded."""
    G, _, _ = _nets()
    save_checkpoint(tmp_path / "s", G=G)
    save_resume_state(tmp_path / "s", {"m": torch.ones(1000)})
    ckpt, resume = load_checkpoint(tmp_path / "s"), load_resume_state(tmp_path / "s")
    for name in ("s.safetensors", "s.resume.safetensors"):
        path = tmp_path / name
        size = path.stat().st_size
        with open(path, "r+b") as f:  # same inode, new bytes
            f.seek(size // 4)
            f.write(b"\x7f" * (size - size // 4))
    assert all(torch.equal(a, b) for a, b in zip(ckpt.G.state_dict().values(), G.state_dict().values(), strict=True))
    assert torch.equal(resume["m"], torch.ones(1000))
