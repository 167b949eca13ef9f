"""Objects found, not only given: the automatic mask generator and new objects joining a run."""

from .discover import Discovery, DiscoverySettings, Joined
from .generator import Candidate, GeneratorSettings, MaskGenerator

__all__ = ["Candidate", "Discovery", "DiscoverySettings", "GeneratorSettings", "Joined", "MaskGenerator"]
