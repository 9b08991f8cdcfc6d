"""StyleGAN2 networks with the public StyleGAN2-ADA API and weight names."""

from core.networks.stylegan2 import (
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    Generator,
    MappingNetwork,
    SynthesisBlock,
    SynthesisNetwork,
)

__all__ = [
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "Generator",
    "MappingNetwork",
    "SynthesisBlock",
    "SynthesisNetwork",
]
