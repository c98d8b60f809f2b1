"""The MATH generalisation experiment (Gaunt et al. 2017, Sec. 6.2, Fig. 8): NTPT against neural
baselines on expressions of 1 to 16 digits.

Pipeline: :mod:`.spec` (the TOML) -> :mod:`.experiment` (the start library, the MATH sweep, Ray
parts, resume) -> :mod:`.ntpt` (continued training, test, with :mod:`.expectation`) and
:mod:`.training` (the :mod:`.baselines`), all on :mod:`.data`'s expressions -> :mod:`.results`
and :mod:`.figures`.
"""
