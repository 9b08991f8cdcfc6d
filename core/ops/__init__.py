"""StyleGAN2 ops. Each has a pure-PyTorch reference path; ``impl='auto'|'ref'|'cuda'`` selects."""

from core.ops.bias_act import activation_funcs, bias_act
from core.ops.conv2d_resample import conv2d_resample
from core.ops.fma import fma
from core.ops.grid_sample_gradfix import grid_sample
from core.ops.modulated_conv2d import modulated_conv2d
from core.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "activation_funcs",
    "bias_act",
    "conv2d_resample",
    "downsample2d",
    "filter2d",
    "fma",
    "grid_sample",
    "modulated_conv2d",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]
