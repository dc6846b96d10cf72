"""Record policy and ownership: what an authorized DHCP server may change.

Entry points: :class:`~acl.policy.config.PolicyConfig` (the ``[policy]`` section),
:class:`~acl.policy.engine.PolicyEngine` (evaluate one UPDATE) and
:class:`~acl.policy.rules.Violation` (rule id + sentence). See ``docs/policy.md``.
"""
