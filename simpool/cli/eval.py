"""``simpool eval PROTOCOL``: one subcommand per evaluation protocol, each writing a JSON result."""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "localization": ("simpool.cli.evaluate.localization", "MaxBoxAccV2 of attention maps (wsolevaluation)"),
    "discovery": ("simpool.cli.evaluate.discovery", "object discovery: LOST / DINO-seg boxes and CorLoc"),
    "knn": ("simpool.cli.evaluate.knn", "weighted k-NN classification of frozen features (DINO)"),
    "linear": ("simpool.cli.evaluate.linear", "linear probe on frozen features (DINO)"),
    "finetune": ("simpool.cli.evaluate.finetune", "fine-tuning on ImageFolder datasets"),
    "retrieval": ("simpool.cli.evaluate.retrieval", "ROxford/RParis mAP, Medium and Hard (revisitop)"),
    "recall": ("simpool.cli.evaluate.recall", "Recall@k on CUB, Cars, SOP, In-Shop"),
    "robustness": ("simpool.cli.evaluate.robustness", "background robustness on ImageNet-9 variations"),
    "segmentation": ("simpool.cli.evaluate.segmentation", "linear semantic segmentation on frozen patch features"),
}
