"""flowdist: generative models as torch.distributions that compose inside Pyro."""

__version__ = "0.1.0"
