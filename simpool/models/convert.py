"""An official (or our own) checkpoint -> a clean safetensors file of ours.

The file is read without executing code (``torch.load(weights_only=True)`` or safetensors), its
key layout is detected and renamed to ours, dropped tensors are reported, and the result is
written atomically (``simpool convert``). With a ``preset`` the weights are first loaded strictly into
that official model, so a file that would not load is never written.
"""

from __future__ import annotations

import warnings

from .checkpoint import load_state, read_state_dict, save_checkpoint
from .layouts import convert_state_dict
from .official import PRESETS, create_official_model, official_use_beta


def convert(input: str, out: str, key: str | None = None, layout: str | None = None, preset: str | None = None) -> dict:
    """Convert ``input`` to ``out``; returns a summary (layout, tensors written, notices)."""
    state, layout, notices = convert_state_dict(read_state_dict(input, key), layout)
    if preset is not None:
        model = create_official_model(preset, use_beta=official_use_beta(PRESETS[preset], state))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the notices are printed below
            report = load_state(model, state, notices=notices, source=input)
        notices = report["notices"]
        state = model.state_dict()  # exactly the tensors the model uses, e.g. without an unused beta
    metadata = {"source": str(input), "layout": layout}
    if preset is not None:
        metadata["preset"] = preset
    save_checkpoint(state, out, metadata=metadata)
    return {"out": str(out), "layout": layout, "tensors": len(state), "notices": notices, "preset": preset}
