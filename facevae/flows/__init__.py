"""Normalizing flows on the latent space: the planar bijector and the Keras layer that stacks K of them."""
from facevae.flows.layers import PlanarFlows
from facevae.flows.planar import PlanarFlow, planar_u_hat

__all__ = ["PlanarFlow", "PlanarFlows", "planar_u_hat"]
