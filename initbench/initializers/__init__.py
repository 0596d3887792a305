"""Initialization schemes: the registry (``registry``), per-layer schemes (``layer``),
whole-model schemes (``whole``: lsuv, pretrained; ``residual``: fixup, skipinit) and users' own (``user``: files,
modules, functions registered in Python or by installed packages). ``get(name)`` is the
way in: a name (with its parameters, ``uniform:-0.1,0.1``), an alias, a user's file or
function, each resolved to one ``Scheme`` record (its function, formula, reference,
convention and what it can fill).

A per-layer scheme is a function that fills one layer in place from the generator it is
given, and may ask, by keyword, for the activation's gain and the layer's record (its
index, depth and fans: ``Layer``); its docstring's ``Formula:`` and ``Reference:`` lines
are what ``initbench schemes`` shows::

    from initbench.initializers.registry import fan_in, register

    @register("half_rule", convention="lesson")
    def half_rule(weight, bias, generator, gain: float = 0.5):
        \"\"\"The general rule at a fraction of its range.

        Formula: U(-gain/sqrt(n), gain/sqrt(n)), n = fan_in; bias 0
        Reference: the lesson's general rule
        \"\"\"
        bound = gain / fan_in(weight) ** 0.5
        weight.uniform_(-bound, bound, generator=generator)
        bias.zero_()

(``half_rule:0.25`` then binds ``gain``: a parameter is one of ``registry.PARAMETERS``).
A whole-model scheme takes ``(model, context)``
and returns each layer's provenance (``register(..., whole_model=True)``). Users write
the same functions in a file or a package (``user``), keyed by their code.
"""

from initbench.initializers import layer, residual, transformer, user, whole  # noqa: F401  (importing them registers their schemes)
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
