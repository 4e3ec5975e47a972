"""The policies: the custom models, their action maths, save/load, the critic, the fit check.

* :mod:`agents.policies.policy`: the public face: the kinds, ``make_policy``,
  ``save_policy`` / ``load_policy`` and a policy's velocity bins (every name below re-exported).
* :mod:`agents.policies.transformer`: the causal Transformer (``DrumPolicy``).
* :mod:`agents.policies.mlp`: SB3's PPO policy at equal size (``MLPPolicy``).
* :mod:`agents.policies.distributions`: the action maths (``ActionDist``, Bernoulli and
  categorical kernels).
* :mod:`agents.policies.common`: what both models share (output, heads, velocity bins).
* :mod:`agents.policies.dropout`: dropout with cheap masks (16-bit random integers), the
  Transformer's in training.
* :mod:`agents.policies.critic`: the PPO trainer's value network.
* :mod:`agents.policies.compat`: whether a policy and an env's task agree.
"""
