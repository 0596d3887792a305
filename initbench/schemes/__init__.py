"""Initialization schemes: the registry (``registry``), per-layer schemes (``layer``),
whole-model schemes (``whole``: lsuv, pretrained; ``residual``: fixup, skipinit) and users' own (``user``: files,
modules, functions registered in Python or by installed packages). ``get(name)`` is the
way in."""

from initbench import called_as_api
from initbench.schemes import layer, residual, user, whole  # noqa: F401  (importing them registers their schemes)
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
from initbench.schemes.user import stem

__all__ = ["ALIASES", "ALIAS_CONVENTION", "BIAS_POLICIES", "CONVENTIONS", "GAIN", "PARAMETERS", "InitContext",
           "Scheme", "bias_policy_", "catalogue", "get", "names", "register", "stem", "usage", "whole_model"]

called_as_api(__name__)  # ib.schemes(...): this module, called, is initbench.api.schemes
