"""ADA Studio core: StyleGAN2 networks and ops, ADA/APA augmentation, data, training, metrics."""
