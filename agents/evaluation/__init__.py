"""Evaluation: play episodes, score policies on held-out data, compare shapings, compose.

* :mod:`agents.evaluation.rollout`: the shared evaluation loop and its policy adapters.
* :mod:`agents.evaluation.heldout`: the held-out split, its ceiling and floors, the scores.
* :mod:`agents.evaluation.alignment`: does a reward shaping rank real drumming first?
* :mod:`agents.evaluation.players`: the alignment tables' players (ways to continue a primer).
* :mod:`agents.evaluation.temperature`: a policy's sampling temperature, chosen on training data.
* :mod:`agents.evaluation.benchmark`, :mod:`agents.evaluation.benchmark_report`: the shaping
  benchmark and its tables.
* :mod:`agents.evaluation.benchmark_players`: the benchmark's players that do not train.
* :mod:`agents.evaluation.generate`: ``drum-env generate`` (``.mid``, ``.npz``, ``.png``).
* :mod:`agents.evaluation.report`, :mod:`agents.evaluation.report_page`: ``drum-env report``,
  the listening page.
"""
