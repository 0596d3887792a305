"""Initialization schemes: the registry (``registry``), per-layer schemes (``layer``),
whole-model schemes (``whole``: lsuv, pretrained; ``residual``: fixup, skipinit) and users' own (``user``: files,
modules, functions registered in Python or by installed packages). ``get(name)`` is the
way in."""

from initbench.initializers import layer, residual, user, whole  # noqa: F401  (importing them registers their schemes)
from initbench.initializers.registry import (
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
from initbench.initializers.user import stem

__all__ = ["ALIASES", "ALIAS_CONVENTION", "BIAS_POLICIES", "CONVENTIONS", "GAIN", "PARAMETERS", "InitContext",
           "Scheme", "bias_policy_", "catalogue", "get", "names", "register", "stem", "usage", "whole_model"]
