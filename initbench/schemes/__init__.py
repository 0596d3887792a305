"""Initialization schemes: the registry (``registry``), per-layer schemes (``layer``) and
whole-model schemes (``whole``: lsuv, pretrained). ``get(name)`` is the way in."""

from initbench.schemes import layer, whole  # noqa: F401  (importing them registers their schemes)
from initbench.schemes.registry import (
    ALIAS_CONVENTION,
    ALIASES,
    BIAS_POLICIES,
    CONVENTIONS,
    GAIN,
    PARAMETERS,
    InitContext,
    Scheme,
    bias_policy_,
    catalogue,
    get,
    names,
    register,
    usage,
    whole_model,
)

__all__ = ["ALIASES", "ALIAS_CONVENTION", "BIAS_POLICIES", "CONVENTIONS", "GAIN", "PARAMETERS", "InitContext",
           "Scheme", "bias_policy_", "catalogue", "get", "names", "register", "usage", "whole_model"]
