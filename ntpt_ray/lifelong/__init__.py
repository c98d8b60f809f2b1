"""The paper's lifelong experiment (Sec. 6.1, Fig. 6-7): eight 2x2 tasks, one growing neural
library, and four purely neural baselines on the same schedule, pools and evaluation.

Pipeline: :mod:`.spec` (the TOML) -> :mod:`.pools` (fixed grids) and :mod:`.schedule` ->
learners (:mod:`.ntpt`, :mod:`.baselines`) -> :mod:`.lifetime` (train and evaluate R lifetimes)
-> :mod:`.experiment` (Ray units, resume) -> :mod:`.results` and :mod:`.figures`.
"""
