"""Third-party plugins out of process, in a bubblewrap sandbox (R18-R20): the platform's side.

`loader.third_party_plugin` is what plugins/loading.py calls for another package's entry point;
`plugin.sandboxed_plugin` describes the plugin in a sandbox and returns a Plugin whose tools call its
`SandboxRuntime`: the runner (runner.py) started under bwrap (launch.py) with the plugin's limits
(limits.py, settings.py) and a seccomp allowlist (seccomp.py), serving MCP over stdio with its own
small server (wire.py, no MCP SDK inside: the cold start), spoken to by the platform's MCP client,
its egress proxy (egress.py) and its secrets per call. Its events become the calling run's
SandboxNoted events (events.tool_call_notes). `check.check_sandbox` is the start-up self-test;
`serving.at_server_start` is what `plugdeck serve` runs: the check said, sandboxes started warm.
What a plugin's own code uses inside the sandbox is `plugdeck.sandbox` (secret, http).
"""
