"""Normalizing flows on the latent space."""
