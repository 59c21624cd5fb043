"""DINO self-supervised pre-training (Caron et al., 2021) with any pool: config, multi-crop data, head,
loss, optimisation, the k-NN monitor, and the recipe that runs them through the engine."""
