"""Normalizing flows on the latent space: the bijectors (one per module), the registry of flow types, and the
Keras layer that stacks K flows of a registered type."""
from facevae.flows.layers import FLOW_MODES, Flows, PlanarFlows
from facevae.flows.planar import PlanarFlow, planar_u_hat
from facevae.flows.registry import FLOW_TYPES, FlowParameter, FlowSpec, flow_spec

__all__ = ["FLOW_MODES", "FLOW_TYPES", "FlowParameter", "FlowSpec", "Flows", "PlanarFlow", "PlanarFlows",
           "flow_spec", "planar_u_hat"]
