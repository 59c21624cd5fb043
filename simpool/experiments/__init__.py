"""Whole studies built from the layers below: the demo, the pooling tournament, the bench report."""
