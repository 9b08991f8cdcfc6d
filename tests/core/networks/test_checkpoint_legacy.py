"""Safe import of public StyleGAN2-ADA .pkl snapshots: fidelity, and refusal of anything else."""

from __future__ import annotations

import collections
import io
import os
import pickle
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core.networks import Discriminator, Generator
from core.networks.checkpoint import LEGACY_SOURCE, CheckpointError, load_checkpoint, save_checkpoint
from core.networks.legacy import UnsafePickleError, import_legacy_pkl, read_legacy_pkl
from core.networks.sources import load_any

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures"
SNAPSHOT = FIXTURES / "sg2_res32_skip_resnet.snapshot.pkl"
BGC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
       "brightness", "contrast", "lumaflip", "hue", "saturation")  # fmt: skip

needs_fixture = pytest.mark.skipif(not SNAPSHOT.is_file(), reason=f"fixture missing: {SNAPSHOT}")


# ------------------------------------------------------------------------------------ the fixture


@needs_fixture
def test_fixture_snapshot_reproduces_reference_outputs() -> None:
    ckpt = import_legacy_pkl(SNAPSHOT)
    ref = load_file(str(FIXTURES / "sg2_res32_skip_resnet.safetensors"))
    with torch.no_grad():
        ws = ckpt.G_ema.mapping(ref["z"], ref["c"], truncation_psi=1, skip_w_avg_update=True)
        img = ckpt.G_ema.synthesis(ws, noise_mode="const")
        ws07 = ckpt.G_ema.mapping(ref["z"], ref["c"], truncation_psi=0.7, skip_w_avg_update=True)
        img07 = ckpt.G_ema.synthesis(ws07, noise_mode="const")
        logits = ckpt.D(ref["x_real"], ref["c"])
    assert (img - ref["img_const"]).abs().max() <= 1e-4
    assert (img07 - ref["img_psi07_const"]).abs().max() <= 1e-4
    assert (logits - ref["d_logits_real"]).abs().max() <= 1e-4
    assert ckpt.G is not None and ckpt.G.init_kwargs["img_resolution"] == 32


@needs_fixture
def test_fixture_augment_settings_and_meta() -> None:
    ckpt = import_legacy_pkl(SNAPSHOT)
    settings = ckpt.augment_settings
    assert settings["p"] == pytest.approx(0.37)
    assert {k: settings["stylegan2_ada_kwargs"][k] for k in BGC} == dict.fromkeys(BGC, 1)
    assert ckpt.meta["p"] == pytest.approx(0.37) and ckpt.meta["source"] == LEGACY_SOURCE == "legacy-pkl"
    assert ckpt.meta["dataset"]["resolution"] == 32  # training_set_kwargs, kept as data
    assert any("Hz_geom" in line and "Hz_fbank" in line for line in ckpt.meta["ignored"])
    assert ckpt.augment_pipe is not None  # core.augment is present: a real pipe, never silently dropped
    assert float(ckpt.augment_pipe.p) == pytest.approx(0.37)
    assert all(ckpt.augment_pipe.multipliers()[k] == 1 for k in BGC)
    assert ckpt.augment_pipe.multipliers()["noise"] == 0


@needs_fixture
def test_fixture_converts_to_our_format_bit_exactly(tmp_path: Path) -> None:
    imported = load_any(SNAPSHOT)
    meta = {k: v for k, v in imported.meta.items() if k not in ("ignored", "source", "source_file")}
    assert imported.augment_pipe is not None  # dropped silently, the pipe's check below would never run
    save_checkpoint(tmp_path / "conv", G=imported.G, D=imported.D, G_ema=imported.G_ema,
                    augment_pipe=imported.augment_pipe, augment_state=imported.augment_state, **meta)
    ours = load_checkpoint(tmp_path / "conv")
    for name in ("G", "D", "G_ema"):
        a, b = getattr(ours, name).state_dict(), getattr(imported, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ours.meta["p"] == imported.meta["p"] and ours.meta["dataset"] == imported.meta["dataset"]
    assert ours.augment_pipe is not None and ours.augment_pipe.settings() == imported.augment_pipe.settings()


@needs_fixture
def test_truncated_and_garbage_files_give_one_clear_error(tmp_path: Path) -> None:
    data = SNAPSHOT.read_bytes()
    bad = tmp_path / "network-snapshot-000001.pkl"
    for cut in (0, 1, 2, 50, 1000, 100_000, len(data) // 2, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"network-snapshot-000001\.pkl: not a readable"):
            import_legacy_pkl(bad)
    rng = np.random.default_rng(0)
    for blob in (b"hello, not a pickle", rng.bytes(5000), b"\x80\x04" + rng.bytes(5000)):
        bad.write_bytes(blob)
        with pytest.raises(CheckpointError, match=r"network-snapshot-000001\.pkl: "):
            load_any(bad)
    # A middle byte flipped: either refused cleanly or (if it hit tensor data) the same networks with
    # at most one value changed; anything else (another exception, other shapes) fails here.
    original = import_legacy_pkl(SNAPSHOT)
    loaded = 0
    # (and one inside a module's name, "fc0" -> "fc\x10", still valid UTF-8: a lenient loader would
    # fill that layer with fresh weights)
    flips = [(offset, 0xFF) for offset in range(1000, len(data), len(data) // 7)]
    for offset, mask in [*flips, (data.index(b"fc0", 1000) + 2, 0x20)]:
        flipped = bytearray(data)
        flipped[offset] ^= mask
        bad.write_bytes(bytes(flipped))
        try:
            ckpt = import_legacy_pkl(bad)
        except CheckpointError as e:
            assert "network-snapshot-000001.pkl: " in str(e), e
            continue
        loaded += 1
        changed = 0
        for name in ("G", "D", "G_ema"):
            a, b = getattr(ckpt, name).state_dict(), getattr(original, name).state_dict()
            assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a), f"offset {offset}: {name}"
            changed += sum(int((a[k] != b[k]).sum()) for k in a)
        assert changed <= 1, f"offset {offset}: one flipped byte changed {changed} values"
    assert loaded >= 1  # most of the file is tensor data: some flips land there and still load


# ----------------------------------------------------- a writer of public-format pickles, for tests


def _named(module: str, name: str, obj: Any) -> Any:
    obj.__module__, obj.__qualname__, obj.__name__ = module, name, name
    return obj


@pytest.fixture
def public_pickler(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Stand-ins for the public torch_utils.persistence and dnnlib so that pickle can name them."""

    def reconstruct(meta: Any) -> Any:  # never called: we only write with it
        raise AssertionError("not for loading")

    class EasyDict(dict):
        pass

    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _named("torch_utils.persistence", "_reconstruct_persistent_obj",
                                                     reconstruct)
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = _named("dnnlib.util", "EasyDict", EasyDict)
    for name, module in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                         ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
        monkeypatch.setitem(sys.modules, name, module)
    yield types.SimpleNamespace(reconstruct=persistence._reconstruct_persistent_obj, EasyDict=util.EasyDict)


class _Persistent:
    def __init__(self, reconstruct: Any, meta: dict[str, Any]) -> None:
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self) -> Any:
        return self.reconstruct, (self.meta,)


def _record(pk: Any, module: torch.nn.Module, module_src: str, init_kwargs: dict | None = None,
            dtype: torch.dtype | None = None, class_name: str | None = None) -> _Persistent:  # fmt: skip
    def cast(t: torch.Tensor) -> torch.Tensor:
        return t.to(dtype) if dtype is not None and t.is_floating_point() else t

    state = {
        "training": False,
        "_parameters": collections.OrderedDict(
            (k, None if v is None else torch.nn.Parameter(cast(v.detach()), requires_grad=v.requires_grad))
            for k, v in module._parameters.items()
        ),
        "_buffers": collections.OrderedDict((k, cast(v)) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_forward_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(
            (k, _record(pk, m, module_src, dtype=dtype)) for k, m in module._modules.items()
        ),
        "weight_gain": np.float64(0.125),  # public layers keep numpy scalars around
        "_init_args": (),
        "_init_kwargs": init_kwargs if init_kwargs is not None else {},
    }
    meta = {"type": "class", "version": 6, "module_src": module_src,
            "class_name": class_name or type(module).__name__, "state": state}
    return _Persistent(pk.reconstruct, meta)


def _public_kwargs(pk: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The public train.py passes nested keyword dicts as dnnlib EasyDicts."""
    return {k: pk.EasyDict(v) if isinstance(v, dict) else v for k, v in kwargs.items()}


TINY_G = dict(z_dim=8, c_dim=2, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs={"num_layers": 2},
              synthesis_kwargs={"channel_base": 64, "channel_max": 8, "num_fp16_res": 1, "conv_clamp": 256})
TINY_D = dict(c_dim=2, img_resolution=8, img_channels=3, channel_base=64, channel_max=8, num_fp16_res=1,
              conv_clamp=256, block_kwargs={}, epilogue_kwargs={"mbstd_group_size": 2})


def _write_public(pk: Any, path: Path, module_src: str = "# placeholder\n", dtype: torch.dtype | None = None,
                  **extra: Any) -> tuple[Generator, Discriminator]:  # fmt: skip
    torch.manual_seed(3)
    G, D = Generator(**TINY_G).eval(), Discriminator(**TINY_D).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    snapshot = {
        "training_set_kwargs": pk.EasyDict(path="data.zip", resolution=8, use_labels=True),
        "G": _record(pk, G, module_src, _public_kwargs(pk, G.init_kwargs), dtype),
        "D": _record(pk, D, module_src, _public_kwargs(pk, D.init_kwargs), dtype),
        "G_ema": _record(pk, G, module_src, _public_kwargs(pk, G.init_kwargs), dtype),
        "augment_pipe": None,
        **extra,
    }
    path.write_bytes(pickle.dumps(snapshot, protocol=4))
    return G, D


def _outputs(G: torch.nn.Module, D: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn([2, 8], generator=torch.Generator().manual_seed(1))
    c = torch.eye(2)
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
        return img, D(img, c)


def test_public_format_writer_round_trip(tmp_path: Path, public_pickler: Any) -> None:
    path = tmp_path / "network-snapshot-000140.pkl"
    G, D = _write_public(public_pickler, path)
    ckpt = import_legacy_pkl(path)
    for got, want in zip(_outputs(ckpt.G_ema, ckpt.D), _outputs(G, D), strict=True):
        assert torch.equal(got, want)
    assert ckpt.meta["kimg"] == 140 and ckpt.meta["dataset"]["use_labels"] is True
    assert ckpt.augment_pipe is None and ckpt.augment_settings is None
    assert ckpt.G.init_kwargs["synthesis_kwargs"]["num_fp16_res"] == 1


def test_shared_records_give_independent_networks(tmp_path: Path, public_pickler: Any) -> None:
    """If G_ema is pickled as the very same object as G, the imported networks must not share tensors."""
    G = Generator(**TINY_G)
    rec = _record(public_pickler, G, "", _public_kwargs(public_pickler, G.init_kwargs))
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps({"G": rec, "G_ema": rec}, protocol=4))
    ckpt = import_legacy_pkl(path)
    with torch.no_grad():
        ckpt.G.mapping.fc0.weight.add_(1)
    assert torch.equal(ckpt.G_ema.mapping.fc0.weight, G.mapping.fc0.weight)


def test_float16_tensors_are_cast_and_reported(tmp_path: Path, public_pickler: Any) -> None:
    path = tmp_path / "half.pkl"
    G, _ = _write_public(public_pickler, path, dtype=torch.float16, progress={"cur_nimg": 64000, "batch": 4})
    ckpt = import_legacy_pkl(path)
    assert ckpt.G.mapping.fc0.weight.dtype == torch.float32
    assert torch.equal(ckpt.G.mapping.fc0.weight, G.mapping.fc0.weight.half().float())
    assert any(line.startswith("G: ") and "cast to float32" in line for line in ckpt.meta["ignored"])
    assert ckpt.meta["kimg"] == 64 and ckpt.meta["progress"]["batch"] == 4


def test_embedded_module_src_is_never_executed(tmp_path: Path, public_pickler: Any) -> None:
    canary = tmp_path / "canary"
    src = f'open({str(canary)!r}, "w").write("x")\nimport os\nos.system("touch {canary}")\n'
    path = tmp_path / "evil-src.pkl"
    G, D = _write_public(public_pickler, path, module_src=src)
    ckpt = import_legacy_pkl(path)
    assert not canary.exists()
    for got, want in zip(_outputs(ckpt.G_ema, ckpt.D), _outputs(G, D), strict=True):
        assert torch.equal(got, want)
    exec(compile(src, "<module_src>", "exec"), {})  # what the usual loader would have done
    assert canary.exists()


def test_unknown_persistent_class_is_named(tmp_path: Path, public_pickler: Any) -> None:
    path = tmp_path / "sg3.pkl"
    rec = _record(public_pickler, torch.nn.Module(), "# src", class_name="SynthesisInput")
    path.write_bytes(pickle.dumps({"G_ema": rec}, protocol=4))
    with pytest.raises(CheckpointError, match=r"sg3\.pkl: unknown persistent class 'SynthesisInput'"):
        import_legacy_pkl(path)


def test_structural_errors(tmp_path: Path, public_pickler: Any) -> None:
    path = tmp_path / "s.pkl"
    path.write_bytes(pickle.dumps([1, 2], protocol=4))
    with pytest.raises(CheckpointError, match="expected a snapshot dict"):
        import_legacy_pkl(path)
    path.write_bytes(pickle.dumps({"training_set_kwargs": {}}, protocol=4))
    with pytest.raises(CheckpointError, match="no G, D or G_ema"):
        import_legacy_pkl(path)
    D = Discriminator(**TINY_D)
    path.write_bytes(pickle.dumps({"G": _record(public_pickler, D, "", dict(D.init_kwargs))}, protocol=4))
    with pytest.raises(CheckpointError, match="G is a Discriminator; expected a StyleGAN2-ADA Generator"):
        import_legacy_pkl(path)
    G = Generator(**TINY_G)
    kwargs = {**G.init_kwargs, "w_dim": 16}  # tensors no longer fit the constructor keywords
    path.write_bytes(pickle.dumps({"G": _record(public_pickler, G, "", kwargs)}, protocol=4))
    with pytest.raises(CheckpointError, match=r"s\.pkl: tensor G\..* has shape"):
        import_legacy_pkl(path)


# ----------------------------------------------------------------------------- malicious pickles


def _call(module: str, name: str, args: bytes) -> bytes:
    """Protocol-0 pickle calling module.name(*args); ``args`` are opcodes pushing the arguments."""
    return f"c{module}\n{name}\n(".encode() + args + b"tR."


def _str(s: str) -> bytes:
    return b"V" + s.encode("raw_unicode_escape") + b"\n"


def _payloads(canary: Path) -> list[tuple[str, bytes]]:
    """(the global that must be named in the refusal, pickle bytes)."""
    touch = f"touch {canary}"
    code = f"open({str(canary)!r}, 'w').write('x')"
    import_os = _call("builtins", "__import__", _str("os"))[:-1]  # pushes the os module
    return [
        ("os.system", _call("os", "system", _str(touch))),
        ("posix.system", _call("posix", "system", _str(touch))),
        ("nt.system", _call("nt", "system", _str(touch))),
        ("builtins.eval", _call("builtins", "eval", _str(code))),
        ("builtins.exec", _call("builtins", "exec", _str(code))),
        ("subprocess.Popen", _call("subprocess", "Popen", b"(" + _str("touch") + _str(str(canary)) + b"l")),
        ("builtins.getattr", _call("builtins", "getattr", import_os + _str("system"))),
        ("importlib.import_module", _call("importlib", "import_module", _str("os"))),
        # INST opcode (protocol 0) and STACK_GLOBAL (protocol 4), the latter inside a snapshot dict.
        ("os.system", b"(" + _str(touch) + b"ios\nsystem\n."),
        ("builtins.exec", b"\x80\x04}\x8c\x01G\x8c\x08builtins\x8c\x04exec\x93(" + _str(code) + b"tRs."),
    ]


class _Reducer:
    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> Any:
        return self.fn, self.args


def _reduce_payloads(canary: Path) -> list[tuple[str, bytes]]:
    code = f"open({str(canary)!r}, 'w').write('x')"
    return [
        (f"{os.system.__module__}.system", pickle.dumps({"G": _Reducer(os.system, f"touch {canary}")}, protocol=2)),
        ("builtins.exec", pickle.dumps(_Reducer(exec, code), protocol=4)),
        ("builtins.eval", pickle.dumps([1, {"x": _Reducer(eval, code)}], protocol=5)),
        ("subprocess.Popen", pickle.dumps(_Reducer(subprocess.Popen, ["touch", str(canary)]), protocol=3)),
    ]


def test_payloads_are_live(tmp_path: Path) -> None:
    """The payloads below really run code under an ordinary unpickler (so the refusals mean something)."""
    canary = tmp_path / "canary"
    pickle.loads(dict(_payloads(canary))["builtins.exec"])
    assert canary.exists()
    canary.unlink()
    pickle.loads(dict(_reduce_payloads(canary))["builtins.eval"])
    assert canary.exists()


@pytest.mark.parametrize("source", ["opcodes", "reduce"])
def test_other_globals_are_refused_and_nothing_runs(tmp_path: Path, source: str) -> None:
    canary = tmp_path / "canary"
    payloads = _payloads(canary) if source == "opcodes" else _reduce_payloads(canary)
    for i, (global_name, blob) in enumerate(payloads):
        path = tmp_path / f"evil{i}.pkl"
        path.write_bytes(blob)
        with pytest.raises(UnsafePickleError, match=rf"evil{i}\.pkl: refused: .*{global_name}"):
            import_legacy_pkl(path)
        with pytest.raises(UnsafePickleError):
            load_any(path)
        assert not canary.exists(), global_name


def test_refused_module_is_not_even_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = tmp_path / "canary"
    (tmp_path / "canary_module_xyz.py").write_text(f"open({str(canary)!r}, 'w').write('imported')\nboom = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "imp.pkl"
    path.write_bytes(b"ccanary_module_xyz\nboom\n.")
    with pytest.raises(UnsafePickleError, match="canary_module_xyz.boom"):
        import_legacy_pkl(path)
    assert not canary.exists() and "canary_module_xyz" not in sys.modules


def test_allowed_globals_cannot_be_abused(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    code = f"open({str(canary)!r}, 'w').write('x')"
    inner = pickle.dumps(_Reducer(exec, code), protocol=2)  # what plain torch.load would execute
    storage = io.BytesIO()
    torch.save(torch.zeros(2).untyped_storage(), storage)
    cases = {
        # torch.storage._load_from_bytes with pickled code as the "storage" bytes.
        "storage": pickle.dumps(_Reducer(torch.storage._load_from_bytes, inner), protocol=4),
        # numpy scalar of an object dtype (would hand out a pointer).
        "dtype": pickle.dumps(_Reducer(np.dtype, "O", False, True), protocol=4),
        # a tensor rebuilt with a backward hook.
        # (the storage as public snapshots hold it, so the refusal is about the hooks, not the storage)
        "hooks": pickle.dumps(
            _Reducer(torch._utils._rebuild_tensor_v2, _Reducer(torch.storage._load_from_bytes, storage.getvalue()),
                     0, (2,), (1,), False, collections.OrderedDict(a=1)), protocol=4,
        ),
    }
    messages = {
        "storage": r"storage\.pkl: refused: a tensor storage holds a pickle",
        "dtype": r"dtype\.pkl: numpy dtype 'O' is not a plain number type",
        "hooks": r"hooks\.pkl: tensor rebuild: tensors with hooks or metadata are not expected",
    }
    for name, blob in cases.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(blob)
        with pytest.raises(CheckpointError, match=messages[name]):
            import_legacy_pkl(path)
        assert not canary.exists(), name
    # Sanity: the storage payload really runs code under torch's own (unrestricted) helper, which
    # complains only after the code has run.
    with pytest.raises(RuntimeError, match="magic number"):
        torch.storage._load_from_bytes(inner)
    assert canary.exists()


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pid.pkl"
    path.write_bytes(b"\x80\x02X\x03\x00\x00\x00abcQ.")  # BINPERSID
    with pytest.raises(UnsafePickleError, match="persistent ids"):
        import_legacy_pkl(path)


def test_numpy_scalar_under_both_names(tmp_path: Path) -> None:
    """numpy 2 writes numpy._core.multiarray.scalar; files from numpy 1 say numpy.core.multiarray."""
    blob = pickle.dumps({"gain": np.float64(0.125), "n": np.int32(-3)}, protocol=3)  # text GLOBALs
    assert b"numpy._core.multiarray" in blob or b"numpy.core.multiarray" in blob
    for name in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
        path = tmp_path / "np.pkl"
        path.write_bytes(blob.replace(b"numpy._core.multiarray", name).replace(b"numpy.core.multiarray", name))
        data = read_legacy_pkl(path)
        assert data == {"gain": 0.125, "n": -3} and type(data["gain"]) is np.float64


def test_cyclic_module_tree_is_refused(tmp_path: Path) -> None:
    """Pickle's memo lets a hand-made file make a module its own child (SETITEM after the
    reconstruct call); the importer must end with a clear error, not a RecursionError."""
    from core.networks.legacy import PersistentRecord, _checkpoint_from_data

    state: dict[str, Any] = {"_parameters": {}, "_buffers": {}, "_modules": {}, "_init_kwargs": dict(TINY_G)}
    rec = PersistentRecord("Generator", 6, state)
    state["_modules"]["again"] = rec
    with pytest.raises(CheckpointError, match=r"cycle\.pkl: not a usable .*cyclic"):
        _checkpoint_from_data({"G": rec}, tmp_path / "cycle.pkl")
