"""``simpool eval PROTOCOL``: one subcommand per evaluation protocol, each writing a JSON result."""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "localization": ("simpool.evaluate.localization_cli", "MaxBoxAccV2 of attention maps (wsolevaluation)"),
    "discovery": ("simpool.evaluate.discovery_cli", "object discovery: LOST / DINO-seg boxes and CorLoc"),
    "knn": ("simpool.evaluate.knn", "weighted k-NN classification of frozen features (DINO)"),
    "linear": ("simpool.evaluate.linear", "linear probe on frozen features (DINO)"),
    "finetune": ("simpool.train.finetune", "fine-tuning on ImageFolder datasets"),
    "retrieval": ("simpool.evaluate.retrieval", "ROxford/RParis mAP, Medium and Hard (revisitop)"),
    "recall": ("simpool.evaluate.recall", "Recall@k on CUB, Cars, SOP, In-Shop"),
    "robustness": ("simpool.evaluate.robustness", "background robustness on ImageNet-9 variations"),
    "segmentation": ("simpool.evaluate.segmentation", "linear semantic segmentation on frozen patch features"),
}
