"""The GUI process never loads Triton: its LLVM and Mesa's (llvmpipe) in one process crashed the
app (SIGSEGV) when the projection built its optimizer, since torch's Optimizer imports
torch._dynamo and that imports Triton whenever it is installed."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from viz.app import _keep_triton_out
_keep_triton_out()
import torch
torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # what the projection does
import torch._dynamo
from core.ops.cuda import triton_available
print(sys.modules.get("triton", "absent"), triton_available())
"""


def test_the_gui_process_keeps_triton_out() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == ["None", "False"]
