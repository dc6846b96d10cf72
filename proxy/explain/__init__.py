"""``dnsupdate-proxy explain`` and the ``/explain`` page: what the proxy would do with one
UPDATE from one sender, stage by stage, with the real stages and forwarding nothing."""
