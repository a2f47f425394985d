"""Local stand-ins for every outside API, speaking the real protocols over loopback HTTP.

`sandbox.app.build_app` mounts each registered system (`sandbox.systems.SYSTEMS`) at
`/<name>` behind a gate that journals every request and injects faults; `sandbox.server`
runs it (blocking for the CLI, or in a background thread for tests). Production code never
imports this package.
"""
