"""AugmentPipe settings, presets, state, reproducibility, the p = 0 early-out and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from core.augment import BAND_NAMES, MULTIPLIER_NAMES, OP_NAMES, PRESETS, STRENGTH_NAMES, AugmentPipe
from core.augment.wavelets import filter_bank, geom_lowpass

from .helpers import gen, smooth_image

BGC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
       "brightness", "contrast", "lumaflip", "hue", "saturation")  # fmt: skip


def test_op_names_are_the_papers_order():
    assert OP_NAMES == BGC + ("imgfilter", "noise", "cutout")
    assert MULTIPLIER_NAMES == OP_NAMES + BAND_NAMES


def test_presets_enable_the_documented_ops():
    enabled = {name: {op for op, m in mult.items() if m > 0} for name, mult in PRESETS.items()}
    assert enabled["blit"] == {"xflip", "rotate90", "xint"}
    assert enabled["geom"] == {"scale", "rotate", "aniso", "xfrac"}
    assert enabled["color"] == {"brightness", "contrast", "lumaflip", "hue", "saturation"}
    assert enabled["filter"] == {"imgfilter"} and enabled["noise"] == {"noise"} and enabled["cutout"] == {"cutout"}
    assert enabled["bg"] == enabled["blit"] | enabled["geom"]
    assert enabled["bgc"] == set(BGC)
    assert enabled["bgcf"] == set(BGC) | {"imgfilter"}
    assert enabled["bgcfn"] == enabled["bgcf"] | {"noise"}
    assert enabled["bgcfnc"] == set(OP_NAMES)
    for mult in PRESETS.values():
        assert tuple(mult) == OP_NAMES and set(mult.values()) <= {0.0, 1.0}
    with pytest.raises(TypeError):
        PRESETS["bgc"]["xflip"] = 0.5  # read-only: the GUI imports it


def test_from_preset_and_overrides():
    pipe = AugmentPipe.from_preset("bgc", rotate=0.5, scale_std=0.3, p=0.25)
    m = pipe.multipliers()
    assert m["xflip"] == 1 and m["rotate"] == 0.5 and m["imgfilter"] == 0
    assert pipe.strengths()["scale_std"] == 0.3 and float(pipe.p) == 0.25
    with pytest.raises(ValueError, match="unknown preset 'bgx'.*bgcfnc"):
        AugmentPipe.from_preset("bgx")


def test_public_defaults_and_p_buffer():
    pipe = AugmentPipe()
    assert pipe.strengths() == {
        "xint_max": 0.125, "scale_std": 0.2, "rotate_max": 1.0, "aniso_std": 0.2, "xfrac_std": 0.125,
        "brightness_std": 0.2, "contrast_std": 0.5, "hue_max": 1.0, "saturation_std": 1.0,
        "imgfilter_std": 1.0, "noise_std": 0.1, "cutout_size": 0.5,
    }  # fmt: skip
    assert all(v == 0 for k, v in pipe.multipliers().items() if k in OP_NAMES)
    assert [pipe.multipliers()[b] for b in BAND_NAMES] == [1, 1, 1, 1]
    assert "p" in dict(pipe.named_buffers()) and pipe.p.ndim == 0


def test_set_multipliers_validates_names_and_values_all_or_nothing():
    pipe = AugmentPipe.from_preset("bgc")
    pipe.set_multipliers({"rotate90": 0, "imgfilter_band2": 0.5, "noise": 2})
    m = pipe.multipliers()
    assert m["rotate90"] == 0 and m["imgfilter_band2"] == 0.5 and m["noise"] == 2
    with pytest.raises(ValueError) as err:
        pipe.set_multipliers({"rotate": 0.3, "rotat90": 1, "flip": 1})
    msg = str(err.value)
    assert "flip, rotat90" in msg and "valid: xflip, rotate90" in msg and "imgfilter_band3" in msg
    assert pipe.multipliers()["rotate"] == 1  # nothing applied
    for bad in (-0.1, float("nan"), "a lot"):
        with pytest.raises(ValueError, match="multiplier xint"):
            pipe.set_multipliers({"xint": bad})
    assert pipe.multipliers() == m


def test_bands_settable_by_name_and_as_imgfilter_bands():
    pipe = AugmentPipe(imgfilter=1, imgfilter_bands=[1, 0, 0.5, 1])
    assert [pipe.multipliers()[b] for b in BAND_NAMES] == [1, 0, 0.5, 1]
    pipe.set_strengths({"imgfilter_bands": [0, 1, 1, 0], "noise_std": 0.2})
    assert [pipe.multipliers()[b] for b in BAND_NAMES] == [0, 1, 1, 0]
    assert pipe.init_kwargs["imgfilter_bands"] == [0, 1, 1, 0]
    with pytest.raises(ValueError, match="imgfilter_bands needs 4"):
        AugmentPipe(imgfilter_bands=[1, 1])
    with pytest.raises(ValueError, match="unknown strength.*valid: xint_max"):
        pipe.set_strengths({"noise_sd": 0.1})
    with pytest.raises(ValueError, match="cutout_size must be"):
        pipe.set_strengths({"cutout_size": -1})


def test_state_dict_round_trips_p_multipliers_and_strengths():
    a = AugmentPipe.from_preset("bgcfnc", rotate=0.5, hue_max=0.5, imgfilter_bands=[1, 0, 1, 1], p=0.3)
    state = a.state_dict()
    assert {"p", "multiplier_values", "strength_values"} <= set(state)
    assert "lowpass" not in state and "bank" not in state  # derived constants are not saved
    b = AugmentPipe()
    b.load_state_dict(state, strict=True)
    assert b.multipliers() == a.multipliers() and b.strengths() == a.strengths() and float(b.p) == float(a.p)
    x = smooth_image(3, 3, 16)
    assert torch.equal(a(x, generator=gen(5)), b(x, generator=gen(5)))


def test_public_state_dict_loads_strictly():
    # A public snapshot's pipe state holds p and the two filters; its multipliers are constructor args.
    pipe = AugmentPipe.from_preset("bgc")
    public = {
        "p": torch.tensor(0.37),
        "Hz_geom": torch.tensor(geom_lowpass(), dtype=torch.float32),
        "Hz_fbank": torch.tensor(filter_bank(), dtype=torch.float32),
    }
    pipe.load_state_dict(public, strict=True)
    assert float(pipe.p) == pytest.approx(0.37) and pipe.multipliers()["hue"] == 1


def test_settings_are_json_and_rebuild_the_same_pipe():
    a = AugmentPipe.from_preset("bgcfnc", xint=0.5, xfrac_std=0.2, imgfilter_bands=[1, 1, 0, 1], p=0.6)
    text = json.dumps(a.settings())
    b = AugmentPipe.from_settings(json.loads(text))
    assert b.settings() == a.settings()
    x = smooth_image(2, 3, 32)
    assert torch.equal(a(x, generator=gen(1)), b(x, generator=gen(1)))
    c = AugmentPipe(**a.init_kwargs, p=0.6)  # the public constructor keywords
    assert c.settings() == a.settings()
    with pytest.raises(ValueError, match="unknown key.*multiplier"):
        AugmentPipe.from_settings({"multiplier": {}})


def test_p_zero_returns_the_input_without_drawing_anything():
    pipe = AugmentPipe.from_preset("bgcfnc", p=0)
    x = smooth_image(4, 3, 32)
    g = gen(3)
    g_state, global_state = g.get_state(), torch.get_rng_state()
    out = pipe(x, generator=g)
    assert out is x
    assert torch.equal(g.get_state(), g_state) and torch.equal(torch.get_rng_state(), global_state)
    out, explained = pipe(x, explain=True)
    assert out is x and explained == [{}, {}, {}, {}]


def test_all_multipliers_zero_is_identity_even_at_p_one():
    x = smooth_image(2, 3, 16)
    assert AugmentPipe(p=1)(x) is x
    pipe = AugmentPipe.from_preset("bgc", p=1)
    pipe.set_multipliers({op: 0 for op in OP_NAMES})
    assert pipe(x) is x


def test_same_seed_same_output_bit_exact_and_seed_matters():
    pipe = AugmentPipe.from_preset("bgcfnc", p=0.7)
    x = smooth_image(4, 3, 32)
    a, ea = pipe(x, generator=gen(11), explain=True)
    b, eb = pipe(x, generator=gen(11), explain=True)
    c = pipe(x, generator=gen(12))
    assert torch.equal(a, b) and ea == eb
    assert not torch.equal(a, c)
    # Without a generator the global RNG is used: reproducible under torch.manual_seed.
    torch.manual_seed(4)
    d = pipe(x)
    torch.manual_seed(4)
    assert torch.equal(d, pipe(x))


def test_switching_one_op_keeps_the_other_ops_draws():
    x = smooth_image(6, 3, 16)
    full = AugmentPipe.from_preset("bgcfnc", p=0.8)
    _, e_full = full(x, generator=gen(2), explain=True)
    partial = AugmentPipe.from_preset("bgcfnc", p=0.8)
    partial.set_multipliers({"xflip": 0, "hue": 0, "imgfilter": 0})
    _, e_part = partial(x, generator=gen(2), explain=True)
    for ef, ep in zip(e_full, e_part, strict=True):
        assert {k: v for k, v in ef.items() if k not in ("xflip", "hue", "imgfilter")} == ep


def test_explain_lists_fired_ops_in_order_with_parameters():
    pipe = AugmentPipe.from_preset("bgcfnc", p=1)
    _, explained = pipe(smooth_image(5, 3, 16), generator=gen(0), explain=True)
    assert len(explained) == 5
    for e in explained:
        assert list(e) == list(OP_NAMES)  # at p = 1 every op fires (both rotations included)
        json.dumps(e)
        assert set(e["rotate"]) == {"angle_deg", "pre_deg", "post_deg"}
        assert e["rotate"]["angle_deg"] == pytest.approx(e["rotate"]["pre_deg"] + e["rotate"]["post_deg"])
        assert isinstance(e["xint"]["tx_px"], int) and len(e["imgfilter"]["gains"]) == 4
    # explain() is the same call.
    out, again = pipe.explain(smooth_image(5, 3, 16), generator=gen(0))
    assert again == explained


def test_debug_percentile_fixes_every_parameter():
    pipe = AugmentPipe.from_preset("bgc", p=0)  # debug_percentile shows ops even at p = 0
    x = smooth_image(2, 3, 16)
    _, median = pipe(x, explain=True, debug_percentile=0.5)
    assert median[0]["brightness"]["b"] == 0 and median[0]["contrast"]["c"] == 1
    assert median[0]["scale"]["s"] == 1 and median[0]["hue"]["angle_deg"] == 0
    _, high = pipe(x, explain=True, debug_percentile=0.8413447)  # +1 sigma
    assert high[1]["brightness"]["b"] == pytest.approx(0.2, abs=1e-4)
    assert high[1]["contrast"]["c"] == pytest.approx(2**0.5, rel=1e-4)
    assert high[1]["xflip"]["i"] == 1 and high[1]["rotate90"]["i"] == 3
    with pytest.raises(ValueError, match="debug_percentile"):
        pipe(x, debug_percentile=1.5)


def test_bad_images_get_one_clear_error():
    with pytest.raises(ValueError, match=r"expected images \[N, C, H, W\]"):
        AugmentPipe.from_preset("bgc", p=1)(torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="colour ops need 1 or 3 channels, got 2"):
        AugmentPipe.from_preset("color", p=1)(torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="at least 2x2"):
        AugmentPipe.from_preset("geom", p=1)(torch.zeros(1, 3, 1, 16), generator=gen())
    # Geometry alone works on any channel count.
    out = AugmentPipe.from_preset("bg", p=1)(torch.zeros(1, 2, 16, 16), generator=gen())
    assert out.shape == (1, 2, 16, 16)


def test_strength_names_match_the_constructor():
    pipe = AugmentPipe(**{name: 0.1 for name in STRENGTH_NAMES})
    assert all(v == 0.1 for v in pipe.strengths().values())
    assert "p=1.0000" in repr(AugmentPipe(p=1)) and "all ops off" in repr(AugmentPipe())
