"""Third-party plugins out of process, in a bubblewrap sandbox (R18-R20): the platform's side.

`loader.third_party_plugin` is what plugins/loading.py calls for another package's entry point;
`plugin.sandboxed_plugin` describes the plugin in a sandbox and returns a Plugin whose tools call its
`SandboxRuntime`: the runner (runner.py) started under bwrap (launch.py) with the plugin's limits
(limits.py, settings.py) and a seccomp allowlist (seccomp.py), spoken to over MCP by the MCP client,
its egress proxy (egress.py) and its secrets per call. `check.check_sandbox` is the start-up
self-test. What a plugin's own code uses inside the sandbox is `plugdeck.sandbox` (secret, http).
"""
