"""The policies: the custom models, their action maths, save/load, the critic, the fit check.

* :mod:`agents.policies.policy`: the causal Transformer and the MLP policy, the action maths,
  ``save_policy`` / ``load_policy`` and a policy's velocity bins.
* :mod:`agents.policies.critic`: the PPO trainer's value network.
* :mod:`agents.policies.compat`: whether a policy and an env's task agree.
"""
